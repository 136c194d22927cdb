#define _GNU_SOURCE
#include "CQemuboxSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static void child_fail(int errpipe, int err) {
    ssize_t r;
    do { r = write(errpipe, &err, sizeof(err)); } while (r < 0 && errno == EINTR);
    _exit(127);
}

static void mark_cloexec_from(int first) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = first; fd < max; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
}

int qbx_spawn(const char *path, char *const argv[], char *const envp[],
              const int *fd_map, int fd_map_count, int netns_fd, int new_netns,
              int death_signal, pid_t *out_pid) {
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) return errno;
    pid_t parent = getpid();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(errpipe[0]);
        close(errpipe[1]);
        return e;
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only. */
        for (int s = 1; s < NSIG; s++) {
            if (s == SIGKILL || s == SIGSTOP) continue;
            signal(s, SIG_DFL);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setsid();
        if (death_signal > 0) {
            if (prctl(PR_SET_PDEATHSIG, death_signal) != 0) child_fail(errpipe[1], errno);
            if (getppid() != parent) _exit(126);
        }
        if (netns_fd >= 0) {
            if (setns(netns_fd, CLONE_NEWNET) != 0) child_fail(errpipe[1], errno);
        } else if (new_netns && unshare(CLONE_NEWNET) != 0) {
            child_fail(errpipe[1], errno);
        }
        int max_dst = 2;
        for (int i = 0; i < fd_map_count; i++)
            if (fd_map[2 * i + 1] > max_dst) max_dst = fd_map[2 * i + 1];
        if (errpipe[1] <= max_dst) {
            int moved = fcntl(errpipe[1], F_DUPFD_CLOEXEC, max_dst + 1);
            if (moved < 0) child_fail(errpipe[1], errno);
            errpipe[1] = moved;
        }
        /* Phase 1: move every source above all targets, so no dup2 clobbers a later source. */
        int tmp[256];
        if (fd_map_count > 256) child_fail(errpipe[1], EINVAL);
        for (int i = 0; i < fd_map_count; i++) {
            tmp[i] = fcntl(fd_map[2 * i], F_DUPFD_CLOEXEC, max_dst + 1);
            if (tmp[i] < 0) child_fail(errpipe[1], errno);
        }
        /* Everything up to max_dst that is not a target closes on exec. */
        for (int fd = 0; fd <= max_dst; fd++) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
        mark_cloexec_from(max_dst + 1);
        /* Phase 2: install targets (dup2 clears FD_CLOEXEC on the new descriptor). */
        for (int i = 0; i < fd_map_count; i++) {
            if (dup2(tmp[i], fd_map[2 * i + 1]) < 0) child_fail(errpipe[1], errno);
        }
        execve(path, argv, envp);
        child_fail(errpipe[1], errno);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(errpipe[1]);
    int child_err = 0;
    ssize_t n;
    do { n = read(errpipe[0], &child_err, sizeof(child_err)); } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    if (n == sizeof(child_err)) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return child_err ? child_err : ECHILD;
    }
    *out_pid = pid;
    return 0;
}
