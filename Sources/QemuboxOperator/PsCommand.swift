import ArgumentParser
import Foundation

/// `qemubox ps`.
struct PsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List the running VMs the shim started (from state_dir; stale or malformed records are skipped with a warning).")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .shortAndLong, help: "Print only the task ids.")
    var quiet = false

    func run() throws {
        let configuration = try global.load()
        let scan = VMInventory(stateDirectory: configuration.stateDirectory).scan()
        for warning in scan.warnings { Output.err("qemubox: warning: \(warning)\n") }
        if quiet {
            Output.out(scan.vms.map { $0.id + "\n" }.joined())
            return
        }
        switch global.format {
        case .json:
            Output.out(try Output.json(scan.vms))
        case .table:
            Output.out(Output.table(
                ["CONTAINER", "NAMESPACE", "PID", "VCPUS", "MEMORY", "UPTIME", "ACCEL"],
                scan.vms.map { vm in
                    [vm.id, vm.namespace, "\(vm.pid)", vm.vcpus.map(String.init) ?? "-",
                     vm.memoryMiB.map { "\($0) MiB" } ?? "-", Units.duration(vm.uptimeSeconds), vm.accelerator ?? "-"]
                }))
        }
    }
}
