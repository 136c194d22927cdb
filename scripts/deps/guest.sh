# GuestAgent / vminitd: crun goes into the guest system image (with its
# libraries), built by packaging/build-guest-image.sh with mkfs.erofs; the VM
# tests boot it with QEMU and a busybox container rootfs.
APT_PACKAGES+=(crun erofs-utils qemu-system-x86 busybox-static)

QEMUBOX_GUEST_IMAGE_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../packaging" && pwd)/build-guest-image.sh"

post_install_guest_image() {
    echo "install-deps: guest system image (packaging/build-guest-image.sh)"
    # install-deps runs before test.sh puts Swift on PATH.
    PATH="/opt/swift/usr/bin:$PATH" bash "$QEMUBOX_GUEST_IMAGE_SCRIPT"
}
POST_INSTALL+=(post_install_guest_image)
