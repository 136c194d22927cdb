#define _GNU_SOURCE
#include "CProcessSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Most descriptors (map + TAPs + vhost) a child gets. */
#define QBX_MAX_FDS 256

/* Defined in jail.c: builds the root, pivots into it, drops the identity. */
int qbx_jail_enter(const struct qbx_jail *jail, int *stage, int *index);
int qbx_jail_seccomp(const struct qbx_jail *jail);

struct child_report {
    int err;
    int stage;
    int index;
};

static void child_fail(int errpipe, int err, int stage, int index) {
    struct child_report report = { err ? err : EIO, stage, index };
    ssize_t r;
    do { r = write(errpipe, &report, sizeof(report)); } while (r < 0 && errno == EINTR);
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

/* Opens a TAP named `name` in the calling thread's network namespace. */
static int open_tap(const char *name, int vnet_hdr) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    size_t len = strlen(name);
    if (len == 0 || len >= IFNAMSIZ) {
        close(fd);
        errno = EINVAL;
        return -1;
    }
    memcpy(ifr.ifr_name, name, len);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* The child, between fork and exec: async-signal-safe calls only. */
static void run_child(const struct qbx_spawn_request *r, pid_t parent, int errpipe) {
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        signal(s, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (r->new_session) setsid();
    if (r->set_nice) (void)setpriority(PRIO_PROCESS, 0, r->nice_value);
    if (r->no_address_randomization) {
        int current = personality(0xffffffff);
        if (current != -1) (void)personality((unsigned long)current | ADDR_NO_RANDOMIZE);
    }
    if (r->netns_fd >= 0) {
        if (setns(r->netns_fd, CLONE_NEWNET) != 0) child_fail(errpipe, errno, QBX_STAGE_NETNS, 0);
    } else if (r->new_netns && unshare(CLONE_NEWNET) != 0) {
        child_fail(errpipe, errno, QBX_STAGE_NETNS, 0);
    }

    /* Every descriptor the child gets: the caller's map, then the TAPs and vhost devices opened here. */
    int src[QBX_MAX_FDS], dst[QBX_MAX_FDS];
    int n = 0;
    if (r->fd_map_count < 0 || r->fd_map_count + 2 * r->tap_count > QBX_MAX_FDS)
        child_fail(errpipe, EINVAL, QBX_STAGE_FDS, 0);
    for (int i = 0; i < r->fd_map_count; i++) {
        src[n] = r->fd_map[2 * i];
        dst[n++] = r->fd_map[2 * i + 1];
    }
    for (int i = 0; i < r->tap_count; i++) {
        const struct qbx_tap *t = &r->taps[i];
        int fd = open_tap(t->name, t->vnet_hdr);
        if (fd < 0) child_fail(errpipe, errno, QBX_STAGE_TAP, i);
        src[n] = fd;
        dst[n++] = t->target;
        if (t->vhost_target >= 0) {
            int vfd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
            if (vfd < 0) child_fail(errpipe, errno, QBX_STAGE_VHOST, i);
            src[n] = vfd;
            dst[n++] = t->vhost_target;
        }
    }

    int max_dst = 2;
    for (int i = 0; i < n; i++)
        if (dst[i] > max_dst) max_dst = dst[i];
    if (errpipe <= max_dst) {
        int moved = fcntl(errpipe, F_DUPFD_CLOEXEC, max_dst + 1);
        if (moved < 0) child_fail(errpipe, errno, QBX_STAGE_FDS, 0);
        errpipe = moved;
    }
    /* Phase 1: move every source above all targets, so no dup2 clobbers a later source. */
    int tmp[QBX_MAX_FDS];
    for (int i = 0; i < n; i++) {
        tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, max_dst + 1);
        if (tmp[i] < 0) child_fail(errpipe, errno, QBX_STAGE_FDS, i);
    }
    /* Everything up to max_dst that is not a target closes on exec. */
    for (int fd = 0; fd <= max_dst; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    mark_cloexec_from(max_dst + 1);
    /* Phase 2: install targets (dup2 clears FD_CLOEXEC on the new descriptor). */
    for (int i = 0; i < n; i++) {
        if (dup2(tmp[i], dst[i]) < 0) child_fail(errpipe, errno, QBX_STAGE_FDS, i);
    }
    /* Close everything else now rather than at exec: a jail takes a while to build, and
     * descriptors inherited from other threads (lock files, pipes) must not stay held by
     * this child meanwhile. Close-on-exec stays the fallback. */
#ifdef SYS_close_range
    if (errpipe > max_dst + 1) syscall(SYS_close_range, (unsigned)(max_dst + 1), (unsigned)(errpipe - 1), 0U);
    syscall(SYS_close_range, (unsigned)(errpipe + 1), ~0U, 0U);
#endif

    if (r->jail) {
        int stage = 0, index = 0;
        int e = qbx_jail_enter(r->jail, &stage, &index);
        if (e != 0) child_fail(errpipe, e, stage, index);
    }
    /* After the identity change, which clears the parent-death signal. */
    if (r->death_signal > 0) {
        if (prctl(PR_SET_PDEATHSIG, r->death_signal) != 0) child_fail(errpipe, errno, QBX_STAGE_DEATHSIG, 0);
        if (getppid() != parent) _exit(126);
    }
    if (r->jail) {
        int e = qbx_jail_seccomp(r->jail);
        if (e != 0) child_fail(errpipe, e, QBX_STAGE_SECCOMP, 0);
    }
    execve(r->path, r->argv, r->envp);
    child_fail(errpipe, errno, QBX_STAGE_EXEC, 0);
}

int qbx_spawn(const struct qbx_spawn_request *request, pid_t *out_pid, int *out_stage, int *out_index) {
    *out_stage = QBX_STAGE_FORK;
    *out_index = 0;
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
        close(errpipe[0]);
        run_child(request, parent, errpipe[1]);
        _exit(127);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(errpipe[1]);
    struct child_report report = { 0, 0, 0 };
    ssize_t got = 0;
    while (got < (ssize_t)sizeof(report)) {
        ssize_t n = read(errpipe[0], (char *)&report + got, sizeof(report) - (size_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += n;
    }
    close(errpipe[0]);
    if (got == (ssize_t)sizeof(report)) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *out_stage = report.stage;
        *out_index = report.index;
        return report.err;
    }
    *out_pid = pid;
    return 0;
}
