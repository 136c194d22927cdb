# OCISpec: round-trip tests run `runc spec` and `crun spec` (root and rootless)
# to get real config.json files; the interop test and OCISpecBenchmark build a
# Go peer against the runtime-spec Go types (GOPATH mode).
APT_PACKAGES+=(runc crun golang-go golang-github-opencontainers-specs-dev)
