# CRI tests (ShimTests/CRITests): containerd's CRI plugin driven by a Go CRI client
# (Tests/Peers/go/cri-client, GOPATH mode) built against Debian's grpc and golang/protobuf 1.3;
# protoc-gen-go-1-3 (with its gRPC plugin) regenerates its protocol code
# (scripts/generate-cri-client.sh); gcc/libc6-dev build the static pause program of the
# sandbox image; the CNI plugins make the pod network.
APT_PACKAGES+=(containerd runc golang-go golang-google-grpc-dev golang-github-golang-protobuf-1-3-dev
               protobuf-compiler protoc-gen-go-1-3 build-essential libc6-dev
               containernetworking-plugins iproute2 util-linux busybox-static python3)
