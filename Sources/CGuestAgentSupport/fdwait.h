/* Helpers shared by the agent's descriptor-waiting C code (not part of the module's API). */
#ifndef QB_FDWAIT_H
#define QB_FDWAIT_H

#include <errno.h>
#include <poll.h>
#include <unistd.h>

/* Closes `fd` and returns -1, leaving errno as it was: the failure path of an open-and-set-up. */
static inline int qb_close_failed(int fd) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Waits up to `timeout_ms` for `fd` to become readable, retrying on EINTR: poll's result. */
static inline int qb_poll_readable(int fd, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n;
    do { n = poll(&p, 1, timeout_ms); } while (n < 0 && errno == EINTR);
    return n;
}

#endif
