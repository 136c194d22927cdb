# OCISpec: round-trip tests run `runc spec` and `crun spec` (root and rootless)
# to get real config.json files.
APT_PACKAGES+=(runc crun)
