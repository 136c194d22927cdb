#ifndef CEROFS_SUPPORT_H
#define CEROFS_SUPPORT_H
#include <sys/types.h>
#include <sys/xattr.h>
#include <sys/sysmacros.h>

/// makedev/major/minor as functions (they are macros in glibc).
static inline unsigned long long cerofs_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }
static inline unsigned int cerofs_major(unsigned long long dev) { return major(dev); }
static inline unsigned int cerofs_minor(unsigned long long dev) { return minor(dev); }
/// copy_file_range(2) from an explicit input offset to the output's file position;
/// returns bytes copied or -errno.
long long cerofs_copy_file_range(int fd_in, long long *off_in, int fd_out, unsigned long long len);
#endif
