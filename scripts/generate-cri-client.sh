#!/usr/bin/env bash
# Regenerates the committed Go code of the CRI test client (Tests/Peers/go/cri-client/runtimev1)
# from qemubox's subset of the CRI protocol, Tests/Peers/proto/cri/api.proto (runtime.v1).
# Uses Debian's protoc (protobuf-compiler) and the APIv1 Go generator with its gRPC plugin
# (protoc-gen-go-1-3), which matches the Go libraries the client builds against in GOPATH
# mode: golang-github-golang-protobuf-1-3-dev and golang-google-grpc-dev (1.33).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }
plugin=/usr/bin/protoc-gen-go
if ! dpkg-query -W -f='${Status}' protoc-gen-go-1-3 2>/dev/null | grep -q "install ok installed"; then
    echo "protoc-gen-go-1-3 missing: apt-get install protoc-gen-go-1-3 (scripts/install-deps.sh)" >&2
    exit 1
fi
out=Tests/Peers/go/cri-client/runtimev1
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
protoc --plugin=protoc-gen-go="$plugin" -I Tests/Peers/proto \
    --go_out=plugins=grpc,paths=source_relative:"$tmp" cri/api.proto
mkdir -p "$out"
mv "$tmp/cri/api.pb.go" "$out/api.pb.go"
echo "$out/api.pb.go"
