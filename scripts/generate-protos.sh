#!/usr/bin/env bash
# Regenerates the committed Swift code for every .proto qemubox uses.
#   - Sources/TTRPCCodec/Generated: the ttrpc envelope (our own .proto files)
#   - Sources/QemuboxAPI/Generated: containerd's protos from Debian's
#     golang-github-containerd-containerd-dev (not vendored here) and qemubox's own
#   - Tests/Peers/swift/EchoService: the interop test service
# Needs protoc (protobuf-compiler) and protoc-gen-swift, built from the
# swift-protobuf dependency on first use (slow: ~3-10 min), or $PROTOC_GEN_SWIFT.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

plugin="${PROTOC_GEN_SWIFT:-}"
if [ -z "$plugin" ]; then
    swift build -c release --product protoc-gen-swift --scratch-path .build-protoc >&2
    plugin="$PWD/.build-protoc/release/protoc-gen-swift"
fi
gen() { # gen OUTDIR VISIBILITY PROTO_PATHS... -- FILES...
    local out="$1" vis="$2"; shift 2
    local includes=()
    while [ "$1" != "--" ]; do includes+=("-I" "$1"); shift; done
    shift
    mkdir -p "$out"
    protoc --plugin=protoc-gen-swift="$plugin" "${includes[@]}" \
        --swift_opt=Visibility="$vis" --swift_opt=FileNaming=PathToUnderscores \
        --swift_out="$out" "$@"
}

# ttrpc envelope: internal to TTRPCCodec.
rm -f Sources/TTRPCCodec/Generated/*.pb.swift
gen Sources/TTRPCCodec/Generated Internal Sources/TTRPCCodec/Protos /usr/include -- \
    Sources/TTRPCCodec/Protos/ttrpc.proto Sources/TTRPCCodec/Protos/google/rpc/status.proto

# Interop test service (Swift peer shared by tests and benchmarks).
rm -f Tests/Peers/swift/EchoService/*.pb.swift
gen Tests/Peers/swift/EchoService Public Tests/Peers/proto /usr/include -- \
    Tests/Peers/proto/echo.proto

if [ -x scripts/generate-api-protos.sh ]; then
    bash scripts/generate-api-protos.sh "$plugin"
fi
echo "generate-protos: done"
