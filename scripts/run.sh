#!/usr/bin/env bash
# The run command: boots a real container in a real VM and shows its output.
#   scripts/run.sh [ARG...]   (default: a short demo script)
# Installs what is needed (as root: apt packages, the guest kernel, the guest
# system image), builds the `qemubox-run` example, makes a busybox OCI bundle and
# runs it in its own QEMU VM; exits with the container's exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
source scripts/lib/swiftpm-tmp.sh
trap swiftpm_tmp_cleanup EXIT
bash scripts/install-deps.sh
mkdir -p .build-logs
echo "run: building qemubox-run (log: .build-logs/run-build.log)" >&2
if ! swift build --product qemubox-run > .build-logs/run-build.log 2>&1; then
    tail -40 .build-logs/run-build.log >&2
    exit 1
fi
# The guest image install-deps built in this clone, unless one is configured.
export QEMUBOX_GUEST_IMAGE="${QEMUBOX_GUEST_IMAGE:-$PWD/.build-guest/qemubox-guest.erofs}"
bundle=.build-run/bundle
if [ $# -eq 0 ]; then
    set -- sh -c 'echo "hello from a container in its own VM"; echo "kernel: $(uname -sr), hostname: $(hostname), pid: $$"; echo "rootfs: $(grep " / " /proc/mounts)"; echo "this line goes to stderr" >&2; exit 0'
fi
bash scripts/make-busybox-bundle.sh "$bundle" "$@" >&2
swiftpm_tmp_cleanup
trap - EXIT
exec .build/debug/qemubox-run --timings "$bundle"
