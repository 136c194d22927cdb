#!/usr/bin/env bash
# Generates Sources/QemuboxAPI/Generated from containerd's .proto files as
# Debian ships them (golang-github-containerd-containerd-dev, -cgroups-dev,
# golang-gogoprotobuf-dev). Those files are read in place, never vendored.
# Usage: scripts/generate-api-protos.sh PATH_TO_protoc-gen-swift
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="$1"
src=/usr/share/gocode/src
ctrd=github.com/containerd/containerd
out=Sources/QemuboxAPI/Generated
files=(
    "$ctrd/runtime/v2/task/shim.proto"
    "$ctrd/api/types/mount.proto"
    "$ctrd/api/types/metrics.proto"
    "$ctrd/api/types/task/task.proto"
    "$ctrd/api/events/task.proto"
    "$ctrd/api/services/ttrpc/events/v1/events.proto"
    "github.com/containerd/cgroups/v2/stats/metrics.proto"
    "github.com/containerd/cgroups/stats/v1/metrics.proto"
)
for f in "${files[@]}"; do
    [ -f "$src/$f" ] || { echo "missing $src/$f (apt-get install golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" \
    -I "$src" -I "$src/github.com/gogo/protobuf" -I /usr/include \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$out" "${files[@]}"
# qemubox's own guest API (Sources/QemuboxAPI/Protos).
own=Sources/QemuboxAPI/Protos
protoc --plugin=protoc-gen-swift="$plugin" -I "$own" -I /usr/include \
    --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
    --swift_out="$out" qemubox/guest/v1/guest.proto qemubox/shim/v1/metrics.proto
# Shorter file names: drop the common repository prefixes.
for f in "$out"/*.pb.swift; do
    short="$(basename "$f" | sed -e 's/^github.com_containerd_containerd_//' -e 's/^github.com_containerd_//')"
    [ "$f" = "$out/$short" ] || mv "$f" "$out/$short"
done
echo "generated $(ls "$out" | wc -l) files in $out"
python3 scripts/generate-ttrpc-stubs.py "$out" \
    "$src/$ctrd/runtime/v2/task/shim.proto" \
    "$src/$ctrd/api/services/ttrpc/events/v1/events.proto" \
    "$own/qemubox/guest/v1/guest.proto" \
    "$own/qemubox/shim/v1/metrics.proto"
