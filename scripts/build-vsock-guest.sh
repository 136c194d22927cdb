#!/usr/bin/env bash
# Builds the static guest program used by VsockTransport's QEMU test
# (Tests/VsockGuestEcho) into .build-guest/release/VsockGuestEcho.
# Slow the first time (a release build of swift-nio); incremental afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
# The same traits as vminitd's build in this scratch directory (packaging/build-guest-image.sh):
# with different ones each build recompiles the other's shared modules.
swift build -c release -Xswiftc -static-executable --disable-default-traits \
    --scratch-path .build-guest --product VsockGuestEcho
strip .build-guest/release/VsockGuestEcho 2>/dev/null || true
echo "vsock guest: $(pwd)/.build-guest/release/VsockGuestEcho"
