# VsockTransport: Go yamux peer (GOPATH mode, Debian's Go sources), QEMU for the
# virtio-serial test, busybox + cpio for the test initramfs, and the static Swift
# guest program built once (cached in .build-guest) before the suite runs.
APT_PACKAGES+=(golang-go golang-github-hashicorp-yamux-dev qemu-system-x86 busybox-static cpio)

post_install_vsock_guest() {
    # install-deps runs before test.sh puts Swift on PATH.
    PATH="/opt/swift/usr/bin:$PATH" bash "$(dirname "${BASH_SOURCE[0]}")/../build-vsock-guest.sh"
}
POST_INSTALL+=(post_install_vsock_guest)
