// Small C helpers for the guest agent where Swift's Glibc overlay lacks a
// usable form (variadic ioctl, SCM_RIGHTS control messages, posix_spawn with
// signal resets, reboot(2) constants).
#ifndef CGUESTAGENTSUPPORT_H
#define CGUESTAGENTSUPPORT_H

#include <sys/types.h>
#include <sys/xattr.h>  /* llistxattr, lgetxattr: ExportChanges */

/// Receives one file descriptor sent with SCM_RIGHTS on the connected unix
/// socket `sock`. Returns the descriptor (close-on-exec) or -1 with errno set.
int qb_recv_fd(int sock);

/// Sets a terminal's window size (TIOCSWINSZ). Returns 0 or -1 with errno set.
int qb_set_winsize(int fd, unsigned short rows, unsigned short cols);

/// reboot(RB_POWER_OFF). Returns only on failure (-1, errno set).
int qb_poweroff(void);

/// reboot(RB_AUTOBOOT). Returns only on failure (-1, errno set).
int qb_reboot(void);

/// Blocks the `count` signals in `signals` for the calling thread (and the
/// threads it creates afterwards). Returns 0 or an errno value.
int qb_block_signals(const int *signals, int count);

/// Waits for one of the `count` (blocked) signals; returns its number or -1.
int qb_wait_signal(const int *signals, int count);

/// Makes the calling process a child subreaper (prctl). Returns 0 or -1.
int qb_set_subreaper(void);

/// pipe2(O_CLOEXEC). Returns 0 or -1 with errno set.
int qb_pipe_cloexec(int fds[2]);

/// accept4(SOCK_CLOEXEC) without the peer address. Returns the fd or -1.
int qb_accept_cloexec(int listener);

/// Total RAM in bytes (sysinfo), or 0.
unsigned long long qb_total_memory(void);
/// The `index`-th signal PID 1 handles (blocked before main, then waited for),
/// 0 past the end. Before main, PID 1 also mounts /proc (see support.c).
int qb_pid1_handled_signal(int index);
/// An inotify descriptor (close-on-exec, non-blocking) watching `path` for
/// modification (cgroup v2 files such as memory.events notify on change).
/// Returns it or -1 with errno set.
int qb_watch_modifications(const char *path);
/// Waits up to `timeout_ms` for events on such a descriptor and drains them:
/// 1 modified, 2 the watched file went away, 0 timed out, -1 error (errno).
int qb_wait_modification(int fd, int timeout_ms);
/// Writes back and drops the cached blocks of the block device at `path`
/// (BLKFLSBUF). Returns 0 or -1 with errno set.
int qb_flush_block_device(const char *path);
/// Mixes `count` bytes into the kernel's input pool crediting 8 bits each
/// (RNDADDENTROPY on /dev/random), then forces a reseed of the CRNG
/// (RNDRESEEDCRNG). Returns 0 or -1 with errno set.
int qb_add_entropy_and_reseed(const unsigned char *bytes, int count);

/// lseek(SEEK_DATA): the next data at or after `offset`, or -1 (errno ENXIO past the last data).
long long qb_seek_data(int fd, long long offset);
/// lseek(SEEK_HOLE): the next hole at or after `offset` (the end of the file at the latest), or -1.
long long qb_seek_hole(int fd, long long offset);
/// major(3) and minor(3) of a device number.
unsigned int qb_dev_major(unsigned long long dev);
unsigned int qb_dev_minor(unsigned long long dev);

/// A non-blocking socket receiving the kernel's uevents (netlink group 1), or -1 with errno set.
int qb_uevent_open(void);
/// Waits up to `timeout_ms` for uevents on `fd` and drains them: 1 when some arrived,
/// 0 on timeout, -1 with errno set.
int qb_uevent_wait(int fd, int timeout_ms);

/* rtnetlink (netlink.c). Each returns 0 or an errno value. */

/// Changes link `ifindex`: renames it to `name` (NULL or empty: keep), sets its
/// 6-byte `mac` (NULL: keep) and `mtu` (0: keep), and sets it up (`up` 1) or
/// down (0); `up` -1 leaves the state alone. Renaming needs the link down.
int qb_nl_link_set(int ifindex, const char *name, const unsigned char *mac, unsigned int mtu, int up);

/// Adds (or replaces) an address on link `ifindex`: `family` AF_INET (4 bytes) or
/// AF_INET6 (16 bytes, added without duplicate address detection).
int qb_nl_addr_add(int ifindex, int family, const unsigned char *address, int prefix_length);

/// Adds (or replaces) a route in the main table: `destination`/`prefix_length`
/// (0 for a default route), through `gateway` (NULL: on-link) out of `ifindex`
/// (0: any), with `metric` (0: the kernel's default).
int qb_nl_route_add(int family, const unsigned char *destination, int prefix_length,
                    const unsigned char *gateway, int ifindex, unsigned int metric);

#endif
