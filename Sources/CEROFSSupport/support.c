#define _GNU_SOURCE
#include <unistd.h>
#include <errno.h>
#include "CEROFSSupport.h"

long long cerofs_copy_file_range(int fd_in, long long *off_in, int fd_out, unsigned long long len) {
    loff_t in = (loff_t)*off_in;
    ssize_t n = copy_file_range(fd_in, &in, fd_out, NULL, (size_t)len, 0);
    if (n > 0) *off_in = (long long)in;
    return n < 0 ? -(long long)errno : (long long)n;
}
