import ArgumentParser
import Foundation

/// Which VM: a task id and, when the id is not unique across namespaces, the namespace.
struct VMSelection: ParsableArguments {
    @Option(name: .shortAndLong, help: "The containerd namespace (default: $CONTAINERD_NAMESPACE, else whichever holds ID).")
    var namespace: String?

    @Flag(name: .shortAndLong, help: "Keep printing what is appended until interrupted (or the VM is deleted).")
    var follow = false

    @Argument(help: "The task (container) id.")
    var id: String

    /// Prints the log `fileName` of the selected VM's directory.
    func printLog(_ fileName: String, configuration global: GlobalOptions) throws {
        let configuration = try global.load()
        let namespace = self.namespace ?? ProcessInfo.processInfo.environment["CONTAINERD_NAMESPACE"]
        let directory = try VMInventory(stateDirectory: configuration.stateDirectory)
            .vmDirectory(id: id, namespace: namespace)
        let end = try LogFollower(path: directory + "/" + fileName).run(follow: follow) { Output.write(1, $0) }
        if end == .directoryRemoved { Output.err("qemubox: \(id): the VM's directory was removed (task deleted)\n") }
    }
}

/// `qemubox console`.
struct ConsoleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Print a VM's guest console (the kernel and vminitd; console.log and its rotated .1).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var selection: VMSelection

    func run() throws { try selection.printLog("console.log", configuration: global) }
}

/// `qemubox logs`.
struct LogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print QEMU's own messages for a VM (its stderr: qemu.stderr and its rotated .1).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var selection: VMSelection

    func run() throws { try selection.printLog("qemu.stderr", configuration: global) }
}
