#ifndef CQEMUBOX_SUPPORT_H
#define CQEMUBOX_SUPPORT_H

#include <sys/types.h>
#include <sys/xattr.h>  /* lgetxattr, removexattr: the rootfs writeback */

/// Forks and execs `path` with `argv`/`envp`, returning 0 and the child's pid in
/// `out_pid`, or an errno value (also exec failures, reported through a CLOEXEC pipe).
///
/// In the child, before exec: all signal dispositions are reset and the mask
/// cleared; it becomes a session leader (`setsid`), so signals aimed at the
/// owner's process group do not reach it; `PR_SET_PDEATHSIG` is set to
/// `death_signal` (if > 0) and the child exits at once if the parent is already
/// gone; if `netns_fd >= 0` it joins that network namespace, else if `new_netns`
/// is non-zero it gets a new, empty one of its own (gone when it exits); the descriptors
/// `fd_map[2*i]` are installed as `fd_map[2*i+1]` and every other descriptor is
/// closed on exec.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked exits, so call this from
/// a thread that lives as long as the owner process.
int qbx_spawn(const char *path, char *const argv[], char *const envp[],
              const int *fd_map, int fd_map_count, int netns_fd, int new_netns,
              int death_signal, pid_t *out_pid);

/// openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
/// RESOLVE_NO_XDEV: `path` (relative) is resolved strictly inside `dirfd`, never
/// through a symlink, "..", a magic link or a mount point. Returns the descriptor
/// (close-on-exec) or -1 with errno set (ENOSYS before Linux 5.6).
int qbx_open_beneath(int dirfd, const char *path, int flags, unsigned int mode);

/// mknodat(2) (the Glibc overlay lacks it): `type` S_IFCHR, S_IFBLK or S_IFIFO.
int qbx_mknodat(int dirfd, const char *name, unsigned int mode, unsigned int major, unsigned int minor);

#endif
