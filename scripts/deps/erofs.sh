# EROFSImage: liblz4 and zlib (linked through pkg-config), and the reference
# tools the tests check images with (fsck.erofs, mkfs.erofs for the benchmark),
# GNU tar for building sparse layer tars in tests, attr for inspection.
APT_PACKAGES+=(liblz4-dev zlib1g-dev erofs-utils tar gzip util-linux mount)
