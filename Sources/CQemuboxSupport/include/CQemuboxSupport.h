#ifndef CQEMUBOX_SUPPORT_H
#define CQEMUBOX_SUPPORT_H

#include <sys/types.h>
#include <sys/xattr.h>  /* lgetxattr, removexattr: the rootfs writeback */

/// `O_DIRECT`, `SEEK_DATA` and `SEEK_HOLE` (GNU extensions Swift's Glibc does not import).
int qbx_o_direct(void);
int qbx_seek_data(void);
int qbx_seek_hole(void);

/// openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
/// RESOLVE_NO_XDEV: `path` (relative) is resolved strictly inside `dirfd`, never
/// through a symlink, "..", a magic link or a mount point. Returns the descriptor
/// (close-on-exec) or -1 with errno set (ENOSYS before Linux 5.6).
int qbx_open_beneath(int dirfd, const char *path, int flags, unsigned int mode);

/// mknodat(2) (the Glibc overlay lacks it): `type` S_IFCHR, S_IFBLK or S_IFIFO.
int qbx_mknodat(int dirfd, const char *name, unsigned int mode, unsigned int major, unsigned int minor);

#endif
