#!/usr/bin/env bash
# Builds a qemubox release for x86_64 Linux hosts:
#   out/qemubox-VERSION-linux-x86_64.tar.gz   unpack, then `sudo ./install.sh` (--help)
#   out/qemubox_VERSION_amd64.deb             the same files under /usr, for `dpkg -i`
#   out/SHA256SUMS
# Both hold the release-built shim and `qemubox` (Swift runtime linked in: the host needs
# no Swift), the guest kernel, the guest system image, a default /etc/qemubox/config.toml,
# the dedicated containerd's configuration, a CRI runtime snippet, systemd units and docs.
#
# Usage: packaging/build-release.sh [--out DIR] [--version V]
# Needs what scripts/install-deps.sh installs (the kernel build, erofs-utils, crun, dpkg-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
out=out
version=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --version) version="$2"; shift 2 ;;
        *) echo "build-release: unknown option $1" >&2; exit 2 ;;
    esac
done
export PATH="/opt/swift/usr/bin:$PATH"
mkdir -p "$out" .build-logs
out="$(cd "$out" && pwd)"

log=.build-logs/release-build.log
: >"$log"
echo "build-release: swift build -c release (log: $log)" >&2
for product in containerd-shim-qemubox-v1 qemubox; do
    if ! swift build -c release --static-swift-stdlib --scratch-path .build-release --product "$product" >>"$log" 2>&1; then
        tail -40 "$log" >&2
        exit 1
    fi
done
bin=.build-release/release
[ -n "$version" ] || version="$("$bin/qemubox" --version)"
case "$version" in [0-9]*) ;; *) echo "build-release: bad version '$version'" >&2; exit 1 ;; esac

echo "build-release: guest kernel and system image" >&2
kernel="$(bash kernel-config/build.sh)"
bash packaging/build-guest-image.sh >&2
image=.build-guest/qemubox-guest.erofs

name="qemubox-$version-linux-x86_64"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/bin" "$root/share/qemubox/systemd" "$root/share/doc/qemubox"
for product in containerd-shim-qemubox-v1 qemubox; do
    install -m 0755 "$bin/$product" "$root/bin/$product"
    strip "$root/bin/$product"
done
install -m 0644 "$kernel" "$root/share/qemubox/vmlinux"
install -m 0644 "$image" "$root/share/qemubox/qemubox-guest.erofs"
install -m 0644 packaging/release/config.toml packaging/release/containerd.toml \
    packaging/release/containerd-cri-runtime.toml "$root/share/qemubox/"
install -m 0644 packaging/release/systemd/* "$root/share/qemubox/systemd/"
install -m 0644 README.md CHANGELOG.md "$root/share/doc/qemubox/"
for page in operations configuration security networking kubernetes resources warm-start performance; do
    install -m 0644 "Documentation/$page.md" "$root/share/doc/qemubox/"
done
install -m 0755 packaging/release/install.sh "$root/install.sh"
printf '%s\n' "$version" >"$root/VERSION"

# Reproducible archive: sorted names, root-owned, the commit's time.
epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
tarball="$out/$name.tar.gz"
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    -cf - "$name" | gzip -n >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"

# The .deb: exactly the files `install.sh --prefix /usr --dedicated` writes (its manifest aside),
# configuration as conffiles (dpkg keeps edited ones), the timer enabled on a live host.
deb_root="$stage/deb"
bash "$root/install.sh" --prefix /usr --dedicated --destdir "$deb_root" >/dev/null
rm "$deb_root/usr/share/qemubox/install-manifest"
mkdir -p "$deb_root/DEBIAN"
# Runtime libraries the binaries link, as the Debian packages that ship them.
libs="$(ldd "$root/bin/containerd-shim-qemubox-v1" "$root/bin/qemubox" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)"
depends="$(for lib in $libs; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib"; done \
    | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')"
cat >"$deb_root/DEBIAN/control" <<EOF
Package: qemubox
Version: $version
Architecture: amd64
Maintainer: qemubox developers <qemubox@localhost>
Section: admin
Priority: optional
Depends: $depends, qemu-system-x86, containerd | containerd.io
Recommends: containernetworking-plugins
Installed-Size: $(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
Description: containers in lightweight QEMU virtual machines
 qemubox runs every container in its own QEMU VM behind containerd's runtime
 io.containerd.qemubox.v1: ctr, nerdctl and CRI work unchanged. This package
 holds the containerd shim, the qemubox operator command, the guest kernel and
 guest system image, and systemd units (a daily cache prune; off until
 enabled: a dedicated containerd, qemubox-containerd.service, and a Prometheus
 endpoint, qemubox-metrics.service).
EOF
printf '/etc/qemubox/config.toml\n/etc/qemubox/containerd.toml\n' >"$deb_root/DEBIAN/conffiles"
# Maintainer scripts act on a live host only: a dpkg --root install (DPKG_ROOT set) starts nothing.
cat >"$deb_root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now qemubox-prune.timer >/dev/null || true
fi
EOF
cat >"$deb_root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl disable --now qemubox-prune.timer qemubox-containerd.service qemubox-metrics.service >/dev/null 2>&1 || true
fi
EOF
cat >"$deb_root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
EOF
chmod 0755 "$deb_root/DEBIAN/postinst" "$deb_root/DEBIAN/prerm" "$deb_root/DEBIAN/postrm"
deb="$out/qemubox_${version}_amd64.deb"
SOURCE_DATE_EPOCH="$epoch" dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$deb.tmp" >/dev/null
mv "$deb.tmp" "$deb"

(cd "$out" && sha256sum "$name.tar.gz" "qemubox_${version}_amd64.deb" >SHA256SUMS)
echo "build-release: $tarball ($(du -h "$tarball" | cut -f1))"
echo "build-release: $deb ($(du -h "$deb" | cut -f1))"
