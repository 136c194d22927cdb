# QemuboxShim / containerd-shim-qemubox-v1: a private containerd 1.6 and runc (the
# baseline the shim's behaviour is compared with) for ShimTests; e2fsprogs for the
# writable layer (mkfs.ext4, host loop mount in the writeback); attr (setfattr,
# getfattr) to build and check overlay metadata; busybox-static for the test image.
APT_PACKAGES+=(containerd runc e2fsprogs attr busybox-static erofs-utils python3 util-linux mount)
