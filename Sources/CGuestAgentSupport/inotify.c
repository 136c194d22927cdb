#include "CGuestAgentSupport.h"
#include "fdwait.h"

#include <errno.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

int qb_watch_modifications(const char *path) {
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (fd < 0) return -1;
    if (inotify_add_watch(fd, path, IN_MODIFY) < 0) return qb_close_failed(fd);
    return fd;
}

int qb_wait_modification(int fd, int timeout_ms) {
    int n = qb_poll_readable(fd, timeout_ms);
    if (n < 0) return -1;
    if (n == 0) return 0;
    /* Drain every queued event; report whether the watch went away (file removed). */
    char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int gone = 0;
    for (;;) {
        ssize_t len = read(fd, buffer, sizeof(buffer));
        if (len < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return -1;
        }
        if (len == 0) break;
        for (char *at = buffer; at < buffer + len;) {
            const struct inotify_event *event = (const struct inotify_event *)at;
            if (event->mask & IN_IGNORED) gone = 1;
            at += sizeof(struct inotify_event) + event->len;
        }
    }
    return gone ? 2 : 1;
}
