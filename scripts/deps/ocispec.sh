# OCISpec: round-trip tests run `runc spec` and `crun spec` (root and rootless)
# to get real config.json files; the interop tests and OCISpecBenchmark build a
# Go peer against the runtime-spec Go types and containerd's oci package (GOPATH mode).
APT_PACKAGES+=(runc crun golang-go golang-github-opencontainers-specs-dev golang-github-containerd-containerd-dev)
