# QMPClient / QemuboxKit VM layer: real QEMU under TCG, a busybox initrd built by the tests.
APT_PACKAGES+=(qemu-system-x86 busybox-static cpio)
