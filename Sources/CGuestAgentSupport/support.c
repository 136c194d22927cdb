#define _GNU_SOURCE
#include "CGuestAgentSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

int qb_recv_fd(int sock) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof(int));
            return fd;
        }
    }
    errno = EBADMSG;
    return -1;
}

int qb_set_winsize(int fd, unsigned short rows, unsigned short cols) {
    struct winsize ws = {.ws_row = rows, .ws_col = cols, .ws_xpixel = 0, .ws_ypixel = 0};
    return ioctl(fd, TIOCSWINSZ, &ws);
}

int qb_poweroff(void) { return reboot(RB_POWER_OFF); }

int qb_reboot(void) { return reboot(RB_AUTOBOOT); }

static void fill(sigset_t *set, const int *signals, int count) {
    sigemptyset(set);
    for (int i = 0; i < count; i++) sigaddset(set, signals[i]);
}

int qb_block_signals(const int *signals, int count) {
    sigset_t set;
    fill(&set, signals, count);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int qb_wait_signal(const int *signals, int count) {
    sigset_t set;
    fill(&set, signals, count);
    int sig = 0;
    int rc;
    do {
        rc = sigwait(&set, &sig);
    } while (rc == EINTR);
    return rc == 0 ? sig : -1;
}

int qb_set_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

int qb_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int qb_accept_cloexec(int listener) {
    int fd;
    do {
        fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

unsigned long long qb_total_memory(void) {
    struct sysinfo info;
    if (sysinfo(&info) != 0) return 0;
    return (unsigned long long)info.totalram * info.mem_unit;
}

int qb_flush_block_device(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = ioctl(fd, BLKFLSBUF, 0);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

int qb_add_entropy_and_reseed(const unsigned char *bytes, int count) {
    if (count < 0 || count > 4096) {
        errno = EINVAL;
        return -1;
    }
    struct rand_pool_info *info = malloc(sizeof(*info) + (size_t)count);
    if (info == NULL) return -1;
    info->entropy_count = count * 8;
    info->buf_size = count;
    memcpy(info->buf, bytes, (size_t)count);
    int fd = open("/dev/random", O_WRONLY | O_CLOEXEC);
    int rc = -1;
    if (fd >= 0) {
        rc = ioctl(fd, RNDADDENTROPY, info);
        if (rc == 0) rc = ioctl(fd, RNDRESEEDCRNG);
        int err = errno;
        close(fd);
        errno = err;
    }
    int err = errno;
    free(info);
    errno = err;
    return rc;
}

static const int qb_pid1_signals[] = {SIGTERM, SIGINT, SIGPWR, SIGHUP, SIGUSR1, SIGUSR2};

int qb_pid1_handled_signal(int index) {
    if (index < 0 || index >= (int)(sizeof(qb_pid1_signals) / sizeof(qb_pid1_signals[0]))) return 0;
    return qb_pid1_signals[index];
}

/* Before main, in PID 1 only (vminitd; in any other process linking this library
 * it does nothing): mount /proc and block the signals PID 1 waits for. The Swift
 * runtime has libdispatch worker threads running before main's first statement;
 * libdispatch's pool monitor reads /proc/<tid>/stat and aborts the process
 * (SIGILL) when it cannot, and threads inherit the signal mask only if it is set
 * before they are created. */
__attribute__((constructor)) static void qb_pid1_before_main(void) {
    if (getpid() != 1) return;
    mkdir("/proc", 0555);
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; qb_pid1_handled_signal(i) != 0; i++) sigaddset(&set, qb_pid1_handled_signal(i));
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

long long qb_seek_data(int fd, long long offset) { return (long long)lseek(fd, (off_t)offset, SEEK_DATA); }

long long qb_seek_hole(int fd, long long offset) { return (long long)lseek(fd, (off_t)offset, SEEK_HOLE); }

unsigned int qb_dev_major(unsigned long long dev) { return major((dev_t)dev); }

unsigned int qb_dev_minor(unsigned long long dev) { return minor((dev_t)dev); }
