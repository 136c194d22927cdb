# Debian cloud kernel for QEMU integration tests (until the project's own kernel exists).
# Unpacked into /var/cache/qemubox/cloud-kernel/<version>/ with a `current` symlink;
# tests find it there or via QEMUBOX_TEST_KERNEL.

post_install_cloud_kernel() {
    local cache=/var/cache/qemubox/cloud-kernel
    local pkg
    # The versioned image package the metapackage currently depends on.
    pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}')"
    if [ -z "$pkg" ]; then
        apt-get update -q
        pkg="$(apt-cache depends linux-image-cloud-amd64 \
            | awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}')"
    fi
    if [ -z "$pkg" ]; then
        echo "cloud-kernel: cannot resolve linux-image-cloud-amd64" >&2
        return 1
    fi
    local version="${pkg#linux-image-}"
    local dest="$cache/$version"
    if [ -e "$dest/boot/vmlinuz-$version" ]; then
        ln -sfn "$version" "$cache/current"
        return 0
    fi
    local tmp
    tmp="$(mktemp -d)"
    chmod 0777 "$tmp"  # apt-get download runs as _apt
    (cd "$tmp" && apt-get download -q "$pkg")
    mkdir -p "$dest.partial"
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dest.partial"
    rm -rf "$tmp" "$dest"
    mv "$dest.partial" "$dest"
    ln -sfn "$version" "$cache/current"
    echo "cloud-kernel: $dest"
}
POST_INSTALL+=(post_install_cloud_kernel)
