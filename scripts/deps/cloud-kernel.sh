# The Debian cloud kernel (plus its modules), used by VM tests as the guest kernel
# until the project's own kernel exists. Extracted under
# /var/cache/qemubox/cloud-kernel/<version>/ with a `current` symlink.
post_install_cloud_kernel() {
    local cache=/var/cache/qemubox/cloud-kernel
    local dep version tmp deb
    # linux-image-cloud-amd64 is a metapackage; the real image is its dependency.
    dep="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
    if [ -z "$dep" ]; then
        echo "cloud-kernel: cannot resolve linux-image-cloud-amd64's kernel package" >&2
        return 1
    fi
    version="${dep#linux-image-}"
    if [ -f "$cache/$version/boot/vmlinuz-$version" ]; then
        ln -sfn "$version" "$cache/current"
        return 0
    fi
    mkdir -p "$cache"
    tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download -q "$dep")
    deb="$(ls "$tmp"/*.deb)"
    rm -rf "$cache/$version.tmp"
    mkdir -p "$cache/$version.tmp"
    dpkg-deb -x "$deb" "$cache/$version.tmp"
    rm -rf "$cache/$version"
    mv "$cache/$version.tmp" "$cache/$version"
    ln -sfn "$version" "$cache/current"
    rm -rf "$tmp"
    echo "cloud-kernel: $version in $cache"
}
POST_INSTALL+=(post_install_cloud_kernel)
