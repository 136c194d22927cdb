#!/usr/bin/env bash
# Builds the initramfs that lets the qemubox guest boot on the Debian cloud
# kernel (the fallback when the project's own kernel is not available): the
# cloud kernel builds virtio, erofs and overlay as modules, so a tiny busybox
# /init loads them, mounts the guest system image (first virtio-blk disk) and
# switch_roots into /sbin/vminitd.
#
# Usage: packaging/build-cloud-initrd.sh [OUT]   (default .build-guest/qemubox-cloud-initrd.cpio)
# Kernel: /var/cache/qemubox/cloud-kernel/current (scripts/deps/cloud-kernel.sh),
# or $QEMUBOX_CLOUD_KERNEL_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.build-guest/qemubox-cloud-initrd.cpio}"
kdir="${QEMUBOX_CLOUD_KERNEL_DIR:-/var/cache/qemubox/cloud-kernel/current}"
busybox=/bin/busybox
modules=(virtio_ring virtio virtio_mmio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         virtio_blk virtio_console virtio-rng libcrc32c erofs overlay)

if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
    echo "build-cloud-initrd: need a static $busybox (apt-get install busybox-static)" >&2
    exit 1
fi
moddir="$(ls -d "$kdir"/lib/modules/* 2>/dev/null | head -1)"
[ -n "$moddir" ] || { echo "build-cloud-initrd: no modules under $kdir/lib/modules (scripts/deps/cloud-kernel.sh)" >&2; exit 1; }

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,newroot,modules}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
load=""
for m in "${modules[@]}"; do
    f="$(find "$moddir/kernel" -name "$m.ko" -print -quit)"
    if [ -z "$f" ]; then
        echo "build-cloud-initrd: module $m.ko not found in $moddir (built in?)" >&2
        continue
    fi
    cp "$f" "$root/modules/$m.ko"
    load+="insmod /modules/$m.ko || fail \"insmod $m\""$'\n'
done
cat >"$root/init" <<INIT
#!/bin/busybox sh
# qemubox cloud-kernel initramfs: load drivers, mount the system image, hand over to vminitd.
export PATH=/bin
/bin/busybox --install -s /bin
fail() { echo "qemubox-initrd: \$1" >/dev/console; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
$load
i=0
while [ ! -b /dev/vda ] && [ \$i -lt 200 ]; do sleep 0.01; i=\$((i+1)); done
[ -b /dev/vda ] || fail "no /dev/vda (the guest system image)"
mount -t erofs -o ro /dev/vda /newroot || fail "cannot mount the guest system image"
umount /proc /sys
umount /dev
exec switch_root /newroot /sbin/vminitd
INIT
chmod 755 "$root/init"
mkdir -p "$(dirname "$out")"
(cd "$root" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0) >"$out.tmp"
mv "$out.tmp" "$out"
echo "cloud initrd: $(pwd)/$out ($(du -h "$out" | cut -f1), kernel $(basename "$moddir"))"
