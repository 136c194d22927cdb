# The cloud-kernel fallback's initramfs (packaging/build-cloud-initrd.sh): after
# scripts/deps/cloud-kernel.sh unpacked the kernel and its modules (this file
# sorts after it, so its post-install step runs later).
APT_PACKAGES+=(busybox-static cpio)

QEMUBOX_CLOUD_INITRD_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../packaging" && pwd)/build-cloud-initrd.sh"

post_install_cloud_initrd() {
    echo "install-deps: cloud-kernel initramfs (packaging/build-cloud-initrd.sh)"
    bash "$QEMUBOX_CLOUD_INITRD_SCRIPT"
}
POST_INSTALL+=(post_install_cloud_initrd)
