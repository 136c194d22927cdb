# QemuboxKit's QEMU jail: libseccomp (the syscall allow-list) and libcap-ng (dropping
# every capability), linked through pkg-config by the CQemuboxSeccomp/CQemuboxCapNG
# system library targets.
APT_PACKAGES+=(libseccomp-dev libcap-ng-dev)
