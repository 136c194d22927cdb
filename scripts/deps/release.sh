# The release (packaging/build-release.sh, ReleaseTests): strip, systemd-analyze, dpkg-deb.
APT_PACKAGES+=(binutils systemd dpkg xz-utils)
