// containerd-shim-qemubox-v1: containerd's runtime v2 shim for qemubox
// (`ctr run --runtime io.containerd.qemubox.v1 …`). All logic is in QemuboxShim.
#if canImport(Glibc)
import Glibc
#endif
import QemuboxShim

exit(await QemuboxShim.main(Array(CommandLine.arguments.dropFirst())))
