#!/usr/bin/env bash
# Builds the static guest program used by VsockTransport's QEMU test
# (Tests/VsockGuestEcho) into .build-guest/release/VsockGuestEcho.
# Slow the first time (a release build of swift-nio); incremental afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release -Xswiftc -static-executable \
    --scratch-path .build-guest --product VsockGuestEcho
strip .build-guest/release/VsockGuestEcho 2>/dev/null || true
echo "vsock guest: $(pwd)/.build-guest/release/VsockGuestEcho"
