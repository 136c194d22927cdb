#define _GNU_SOURCE
#include "CQemuboxSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

int qbx_open_beneath(int dirfd, const char *path, int flags, unsigned int mode) {
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int qbx_mknodat(int dirfd, const char *name, unsigned int mode, unsigned int major, unsigned int minor) {
    return mknodat(dirfd, name, (mode_t)mode, makedev(major, minor));
}

int qbx_o_direct(void) { return O_DIRECT; }
int qbx_seek_data(void) { return SEEK_DATA; }
int qbx_seek_hole(void) { return SEEK_HOLE; }
