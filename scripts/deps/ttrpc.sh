# TTRPCCodec / QemuboxAPI: Go ttrpc peers (GOPATH mode, Debian's Go sources),
# containerd's protos and protoc for regenerating the committed Swift code.
APT_PACKAGES+=(golang-go golang-github-containerd-ttrpc-dev golang-github-containerd-containerd-dev golang-github-containerd-cgroups-dev
               golang-gogoprotobuf-dev protobuf-compiler)
