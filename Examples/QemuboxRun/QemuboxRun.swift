// qemubox-run: runs an OCI bundle (config.json + rootfs/) in its own VM and exits
// with the container's exit code. stdout and stderr stream out separately, `-i`
// streams stdin in, `-t` gives a terminal (raw mode, window resizes follow).
//
//   qemubox-run [-i] [-t] [--warm] [--memory MiB] [--cpus N] [--kernel K] [--image I] BUNDLE
import ArgumentParser
import Foundation
import Logging
import QemuboxKit

@main
struct QemuboxRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemubox-run",
        abstract: "Run an OCI bundle in its own lightweight VM.")

    @Flag(name: .short, help: "Keep stdin attached (copied to the container until EOF).")
    var interactive = false
    @Flag(name: .short, help: "Allocate a terminal (default: config.json's process.terminal).")
    var tty = false
    @Option(help: "Guest memory in MiB.") var memory = 256
    @Option(help: "vCPUs.") var cpus = 1
    @Option(name: .customLong("writable-mib"), help: "Size of the writable layer in MiB (0: read-only rootfs, no writable disk).") var writableMiB = 1024
    @Option(help: "Guest kernel (default: QEMUBOX_KERNEL or the installed/cached kernel).") var kernel: String?
    @Option(help: "Guest system image (default: QEMUBOX_GUEST_IMAGE or the installed/cached image).") var image: String?
    @Option(help: "Container id.") var id = "bundle"
    @Option(help: "Keep the VM's files (console.log, disks) in this directory instead of a temporary one.")
    var stateDir: String?
    @Option(name: .customLong("kernel-arg"), help: "Append a word to the guest kernel's command line (repeatable).")
    var kernelArguments: [String] = []
    @Flag(help: "Warm start: restore a saved guest instead of booting (the first run saves it).") var warm = false
    @Option(help: "Where warm-start templates are kept.") var templateDir = VMTemplateStore.defaultDirectory
    @Flag(help: "Verbose agent logging on the guest console, debug logging here.") var debug = false
    @Flag(help: "Print boot and run times to stderr when done.") var timings = false
    @Argument(help: "The bundle directory.") var bundle: String

    func run() async throws {
        var environment = ProcessInfo.processInfo.environment
        if let kernel { environment["QEMUBOX_KERNEL"] = kernel }
        if let image { environment["QEMUBOX_GUEST_IMAGE"] = image }
        var options = BundleRunOptions(bundle: bundle, assets: try GuestAssets.locate(environment: environment),
                                       containerID: id)
        options.memoryMiB = memory
        options.vcpus = cpus
        options.writableBytes = UInt64(writableMiB) << 20
        options.debug = debug
        options.stateDirectory = stateDir
        options.extraKernelArguments = kernelArguments
        options.templates = warm ? VMTemplateStore(directory: templateDir) : nil
        options.terminal = tty ? true : nil
        options.stdin = interactive ? 0 : nil
        var logger = Logger(label: "qemubox-run")
        logger.logLevel = debug ? .debug : .warning
        options.logger = logger

        let terminal = tty && isatty(0) == 1 ? TerminalMode(fd: 0) : nil
        let resizes = tty ? WindowWatcher.start() : nil
        defer { terminal?.restore() }
        let result: BundleRunResult
        do {
            result = try await BundleRunner.run(options, resizes: resizes)
        } catch {
            terminal?.restore()
            FileHandle.standardError.write(Data("qemubox-run: \(error)\n".utf8))
            throw ExitCode(125)
        }
        terminal?.restore()
        if timings {
            let p = result.phases
            FileHandle.standardError.write(Data(String(
                format: "qemubox-run: rootfs %.2fs, boot %.2fs, create %.2fs, start %.2fs, first output at %.2fs, run %.2fs\n",
                p.rootfs, p.boot, p.create, p.start, p.firstOutput ?? -1, result.runSeconds).utf8))
        }
        throw ExitCode(Int32(truncatingIfNeeded: result.exitStatus))
    }
}
