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

/// memfd_create(2) with MFD_CLOEXEC | MFD_ALLOW_SEALING.
int qbx_memfd_create(const char *name);
/// Adds F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE: nobody, root included,
/// can change the contents or size again (private copy-on-write mappings still work).
int qbx_seal_read_only(int fd);
/// 1 when `fd` carries all four seals of `qbx_seal_read_only`, 0 when not, -1 on error.
int qbx_is_sealed_read_only(int fd);
/// Sends one byte with `fd` attached (SCM_RIGHTS). 0 or -1 with errno.
int qbx_send_fd(int sock, int fd);
/// Receives one byte with exactly one descriptor (close-on-exec); -1 with errno
/// (EPROTO: no descriptor, more data, or truncated control data).
int qbx_receive_fd(int sock);
/// The peer's uid of a connected unix socket (SO_PEERCRED).
int qbx_peer_uid(int sock, unsigned int *uid);

#endif
