#!/usr/bin/env bash
# The test command: installs what the suite needs, then builds and runs the
# whole suite. Usage: scripts/test.sh [extra `swift test` arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

export PATH="/opt/swift/usr/bin:$PATH"
# Build first so that compile errors are reported on their own, then run.
swift build --build-tests
swift test --skip-build "$@"
