// The DocC article "Embedding QemuboxKit" (Sources/QemuboxKit/QemuboxKit.docc/Embedding.md),
// compiled with the package so the article's code stays true:
//   qemubox-embed-example BUNDLE
// boots a VM for the OCI bundle, runs its process with this
// process's stdio, and exits with its status.
import Foundation
import QemuboxKit

let arguments = CommandLine.arguments.dropFirst()
guard let bundle = arguments.first else {
    FileHandle.standardError.write(Data("usage: qemubox-embed-example BUNDLE\n".utf8))
    exit(2)
}
do {
    // Where the kernel and guest image are: QEMUBOX_KERNEL / QEMUBOX_GUEST_IMAGE, else installed.
    var options = BundleRunOptions(bundle: bundle, assets: try GuestAssets.locate(), containerID: "embedded")
    options.memoryMiB = 256                     // the VM's size
    options.vcpus = 1
    options.writableBytes = 64 << 20            // a 64 MiB writable layer over the rootfs
    options.stdin = isatty(0) == 1 ? nil : 0    // piped input goes in; stdout/stderr are 1 and 2
    options.logger.logLevel = .warning          // QemuboxKit logs through swift-log
    let result = try await BundleRunner.run(options)
    exit(Int32(truncatingIfNeeded: result.exitStatus))
} catch {
    FileHandle.standardError.write(Data("qemubox-embed-example: \(error)\n".utf8))
    exit(125)
}
