// BootBenchmark: seconds from "go" to a container's first output byte with the
// qemubox guest (BundleRunner: rootfs → EROFS, VM boot, vminitd, crun), against
// the floor: the same kernel on the same machine type booting a busybox
// initramfs whose /init prints a line and powers off. Median of N runs each,
// interleaved, in one process; prints both and the ratio.
//
//   swift run -c release BootBenchmark [RUNS]
// Needs the guest kernel and image (scripts/install-deps.sh), qemu, busybox-static.
import Foundation
import QemuboxKit

let runs = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 7
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

func shell(_ command: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw QemuboxError(.system, "failed: \(command)") }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

var environment = ProcessInfo.processInfo.environment
if environment["QEMUBOX_GUEST_IMAGE"] == nil {
    environment["QEMUBOX_GUEST_IMAGE"] = packageRoot + "/.build-guest/qemubox-guest.erofs"
}
let assets = try GuestAssets.locate(environment: environment)
let work = try BundleRunner.makeTemporaryDirectory()
defer { try? FileManager.default.removeItem(atPath: work) }

// The floor's initramfs: busybox + an /init that prints and powers off.
try shell("""
    set -e; cd '\(work)'; mkdir -p floor/bin floor/dev floor/proc; cp /bin/busybox floor/bin/busybox
    ln -s busybox floor/bin/sh
    printf '#!/bin/sh\\necho FIRST-OUTPUT\\n/bin/busybox poweroff -f\\n' > floor/init; chmod 755 floor/init
    (cd floor && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0 > ../floor.cpio)
    """)
try shell("bash '\(packageRoot)/scripts/make-busybox-bundle.sh' '\(work)/bundle' echo FIRST-OUTPUT > /dev/null")

func floorRun(_ index: Int) async throws -> Double {
    let machine = MachineDescription(name: "floor\(index)",
                                     kernel: KernelBoot(kernelPath: assets.kernelPath, initrdPath: work + "/floor.cpio"))
    let vm = VirtualMachine(machine, configuration: VMConfiguration(stateDirectory: work + "/floor-state\(index)"))
    let start = ContinuousClock.now
    try await vm.start()
    guard await vm.waitForConsole("FIRST-OUTPUT", timeout: .seconds(60)) else {
        await vm.stop()
        throw QemuboxError(.timeout, "floor VM printed nothing")
    }
    let elapsed = seconds(ContinuousClock.now - start)
    _ = await vm.waitForExit()
    return elapsed
}

func qemuboxRun(_ index: Int) async throws -> (first: Double, boot: Double, phases: BundleRunResult.Phases) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw QemuboxError(.system, "pipe") }
    var options = BundleRunOptions(bundle: work + "/bundle", assets: assets, containerID: "bench\(index)")
    options.stdout = fds[1]
    options.writableBytes = 64 << 20
    let start = ContinuousClock.now
    let readEnd = fds[0]
    // A plain thread, not the cooperative pool, blocks on the pipe.
    let firstByte = Task {
        await withCheckedContinuation { (continuation: CheckedContinuation<Double, Never>) in
            Thread {
                var byte: UInt8 = 0
                _ = read(readEnd, &byte, 1)
                let t = seconds(ContinuousClock.now - start)
                var sink = [UInt8](repeating: 0, count: 4096)
                while read(readEnd, &sink, sink.count) > 0 {}
                continuation.resume(returning: t)
            }.start()
        }
    }
    let result = try await BundleRunner.run(options)
    close(fds[1])
    let first = await firstByte.value
    close(fds[0])
    return (first, result.bootSeconds, result.phases)
}

var floor: [Double] = []
var qemubox: [Double] = []
var boots: [Double] = []
var phases: [BundleRunResult.Phases] = []
for i in 0..<runs {
    floor.append(try await floorRun(i))
    let q = try await qemuboxRun(i)
    qemubox.append(q.first)
    boots.append(q.boot)
    phases.append(q.phases)
    print(String(format: "run %d: floor %.2f s, qemubox %.2f s (agent up after %.2f s)", i + 1, floor.last!, q.first, q.boot))
}
let f = median(floor), q = median(qemubox)
print(String(format: "phases (median): rootfs %.2f s, boot %.2f s, create %.2f s, start %.2f s, first output at %.2f s",
             median(phases.map(\.rootfs)), median(phases.map(\.boot)), median(phases.map(\.create)),
             median(phases.map(\.start)), median(phases.compactMap(\.firstOutput))))
print(String(format: "median of %d: floor %.2f s, qemubox bundle → first output %.2f s (agent up %.2f s), ratio %.2fx",
             runs, f, q, median(boots), q / f))
