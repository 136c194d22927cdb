# Guest kernel (kernel-config/): Debian's kernel source and what compiling it
# needs; the boot test (GuestKernelTests) needs QEMU, busybox-static for its
# initramfs, cpio and erofs-utils.
APT_PACKAGES+=(linux-source-6.1 flex bison bc libelf-dev build-essential xz-utils
               qemu-system-x86 busybox-static cpio erofs-utils)

# Path captured now: the function runs after every deps file was sourced.
QEMUBOX_KERNEL_BUILD_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../kernel-config" && pwd)/build.sh"

# Builds the guest kernel into /var/cache/qemubox/kernel/<key>/vmlinux (instant
# when that configuration is already cached) and points `current` at it.
post_install_guest_kernel() {
    echo "install-deps: guest kernel (kernel-config/build.sh)"
    local vmlinux
    vmlinux="$(bash "$QEMUBOX_KERNEL_BUILD_SCRIPT")"
    echo "install-deps: guest kernel at $vmlinux"
}
POST_INSTALL+=(post_install_guest_kernel)
