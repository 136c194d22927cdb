// QemuboxRunVM: boots one machine with QemuboxKit and waits for it to exit.
//
//   QemuboxRunVM --kernel K [--initrd I] --state-dir D [--name N] [--memory MiB] [--cpus N] [-- cmdline words...]
//
// Prints `running pid=<QEMU pid>` once the machine runs, `exit <kind>` when it stops;
// SIGINT/SIGTERM stop it gracefully. Also the owner process of the owner-death test.
import Foundation
import QemuboxKit

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: QemuboxRunVM --kernel K [--initrd I] --state-dir D [--name N] [--memory MiB] [--cpus N] [-- words...]\n".utf8))
    exit(2)
}

var options: [String: String] = [:]
var words = KernelBoot.defaultCommandLine
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    if a == "--" {
        words += args
        break
    }
    guard a.hasPrefix("--"), let v = args.popFirst() else { usage() }
    options[String(a.dropFirst(2))] = v
}
guard let kernel = options["kernel"], let stateDir = options["state-dir"] else { usage() }

var machine = MachineDescription(name: options["name"] ?? "run",
                                 kernel: KernelBoot(kernelPath: kernel, initrdPath: options["initrd"], commandLine: words))
if let m = options["memory"].flatMap(Int.init) { machine.memoryMiB = m }
if let c = options["cpus"].flatMap(Int.init) { machine.vcpus = c }

let vm = VirtualMachine(machine, configuration: VMConfiguration(stateDirectory: stateDir))
do {
    try await vm.start()
} catch {
    FileHandle.standardError.write(Data("start failed: \(error)\n".utf8))
    exit(1)
}
FileHandle.standardOutput.write(Data("running pid=\(await vm.pid ?? -1)\n".utf8))

signal(SIGINT, SIG_IGN)
signal(SIGTERM, SIG_IGN)
let signals = [SIGINT, SIGTERM].map { sig in
    let source = DispatchSource.makeSignalSource(signal: sig)
    source.setEventHandler { Task { await vm.stop() } }
    source.resume()
    return source
}
let reason = await vm.waitForExit()
FileHandle.standardOutput.write(Data("exit \(reason.kind.rawValue) \(reason)\n".utf8))
_ = signals
exit(reason.kind == .guestPoweroff || reason.kind == .quit ? 0 : 1)
