#!/usr/bin/env bash
# The run command: boots a real container in a real VM and shows its output.
#   scripts/run.sh [ARG...]   (default: a short demo script)
# Installs what is needed (as root: apt packages, the guest kernel, the guest
# system image), builds the `qemubox-run` example, makes a busybox OCI bundle and
# runs it in its own QEMU VM; exits with the container's exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bash scripts/install-deps.sh
swift build --product qemubox-run
bundle=.build-run/bundle
if [ $# -eq 0 ]; then
    set -- sh -c 'echo "hello from a container in its own VM"; echo "kernel: $(uname -sr), hostname: $(hostname), pid: $$"; echo "rootfs: $(grep " / " /proc/mounts)"; echo "this line goes to stderr" >&2; exit 0'
fi
bash scripts/make-busybox-bundle.sh "$bundle" "$@" >&2
exec .build/debug/qemubox-run --timings "$bundle"
