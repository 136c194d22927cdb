#!/usr/bin/env bash
# Installs everything qemubox's build and test suite need on Debian 12, as root.
# Each library contributes its own list in scripts/deps/<name>.sh (a bash file
# that appends to APT_PACKAGES and may define a post_install_<name> function).
# Idempotent: packages already present are skipped by apt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

APT_PACKAGES=()
POST_INSTALL=()
for f in "$here"/deps/*.sh; do
    # shellcheck source=/dev/null
    source "$f"
done

if [ "$(id -u)" != 0 ]; then
    echo "install-deps: must run as root (apt-get install)" >&2
    exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for fn in "${POST_INSTALL[@]}"; do
    "$fn"
done
echo "install-deps: done"
