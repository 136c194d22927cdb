#!/usr/bin/env bash
# The run command: boots a real container in a real VM and shows its output.
set -euo pipefail
echo "qemubox: the end-to-end run (guest kernel, vminitd, OCI bundle example) is not built yet;" >&2
echo "see README.md. Only the test command (scripts/test.sh) works today." >&2
exit 2
