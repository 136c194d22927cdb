#!/usr/bin/env bash
# Builds qemubox's read-only guest system image: the static vminitd (guest PID 1
# and agent) at /sbin/vminitd, crun with every library it links and the dynamic
# loader, and the empty mount points PID 1 uses. Written as EROFS, uncompressed:
# under TCG decompressing the pages of the large static vminitd cost ~0.5 s per
# boot (measured: vminitd start 1.2-1.6 s with lz4hc, 0.7-1.0 s without).
#
# Usage: packaging/build-guest-image.sh [OUT]   (default .build-guest/qemubox-guest.erofs)
# Boot: first virtio-blk disk (serial qemubox-system), kernel command line
# `root=/dev/vda rootfstype=erofs ro init=/sbin/vminitd` (Documentation/guest-agent.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.build-guest/qemubox-guest.erofs}"
crun="${CRUN:-/usr/bin/crun}"

for tool in mkfs.erofs ldd strip "$crun"; do
    command -v "$tool" >/dev/null || { echo "build-guest-image: $tool not found (apt-get install crun erofs-utils)" >&2; exit 1; }
done

# Without the OTLP trait (swift-otel): see Package.swift.
swift build -c release -Xswiftc -static-executable --disable-default-traits --scratch-path .build-guest --product vminitd
vminitd=.build-guest/release/vminitd

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{sbin,usr/bin,proc,sys,dev,run,tmp,mnt,etc,var,root}
install -m 0755 "$vminitd" "$root/sbin/vminitd"
strip "$root/sbin/vminitd"
install -m 0755 "$crun" "$root/usr/bin/crun"
# Every library crun links (resolved through symlinks) and the loader, at the
# paths ldd names, so crun runs unchanged.
ldd "$crun" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
# The Swift runtime locates itself through /proc/self/exe while starting, before
# vminitd can mount /proc: give it that path in the image (hidden once proc is mounted).
mkdir -p "$root/proc/self"
ln -s /sbin/vminitd "$root/proc/self/exe"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' >"$root/etc/group"
mkdir -p "$(dirname "$out")"
mkfs.erofs "$out.tmp" "$root" >/dev/null
mv "$out.tmp" "$out"
echo "guest image: $(pwd)/$out ($(du -h "$out" | cut -f1); vminitd $(du -h "$root/sbin/vminitd" | cut -f1))"
