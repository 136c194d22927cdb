// BootBenchmark: seconds from "go" to a container's first output byte with the
// qemubox guest (BundleRunner: rootfs → EROFS, VM boot, vminitd, crun), against
// the floor: the same kernel on the same machine type booting a busybox
// initramfs whose /init prints a line and powers off. qemubox runs twice per
// round: cold (boot) and warm (restored from a VM template saved before the
// timed runs), and in a spare VM (restored and warmed up by one throwaway
// container before the clock starts, Pod.startSpare). Median of N runs each,
// interleaved, in one process; prints the medians and the ratios to the floor.
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

func runOptions(_ index: Int, templates: VMTemplateStore?) -> BundleRunOptions {
    var options = BundleRunOptions(bundle: work + "/bundle", assets: assets, containerID: "bench\(index)")
    options.writableBytes = 64 << 20
    options.templates = templates
    return options
}

func qemuboxRun(_ index: Int, templates: VMTemplateStore? = nil, spare: Bool = false) async throws
    -> (first: Double, boot: Double, phases: BundleRunResult.Phases)
{
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw QemuboxError(.system, "pipe") }
    var options = runOptions(index, templates: templates)
    options.stdout = fds[1]
    if spare {
        // Started (restored and warmed up) before the clock starts, as a shim's spare is.
        let directory = work + "/spare\(index)"
        options.spare = try await Pod.startSpare(options.podConfiguration(id: "spare\(index)", stateDirectory: directory))
    }
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

// Warm start: the template is saved once, before the timed runs (its cost is reported apart).
let templates = VMTemplateStore(directory: work + "/templates")
let saveStarted = ContinuousClock.now
_ = try await qemuboxRun(-1, templates: templates)
let saveSeconds = seconds(ContinuousClock.now - saveStarted)

func report(_ name: String, _ series: [(first: Double, boot: Double, phases: BundleRunResult.Phases)], floor f: Double) {
    let p = series.map(\.phases)
    print(name + String(format: " phases (median): rootfs %.2f s, boot %.2f s, create %.2f s, start %.2f s, first output at %.2f s",
                 median(p.map(\.rootfs)), median(p.map(\.boot)), median(p.map(\.create)),
                 median(p.map(\.start)), median(p.compactMap(\.firstOutput))))
    let q = median(series.map(\.first))
    print(String(format: "median of %d: floor %.2f s, ", series.count, f) + name
        + String(format: " bundle → first output %.2f s (agent up %.2f s), ratio %.2fx", q, median(series.map(\.boot)), q / f))
}

var floor: [Double] = []
var cold: [(first: Double, boot: Double, phases: BundleRunResult.Phases)] = []
var warm: [(first: Double, boot: Double, phases: BundleRunResult.Phases)] = []
var spare: [(first: Double, boot: Double, phases: BundleRunResult.Phases)] = []
// A spare VM's template (it has a disk controller: another key) is saved before the timed runs too.
_ = try await qemuboxRun(-2, templates: templates, spare: true)
for i in 0..<runs {
    floor.append(try await floorRun(i))
    cold.append(try await qemuboxRun(i))
    warm.append(try await qemuboxRun(runs + i, templates: templates))
    spare.append(try await qemuboxRun(2 * runs + i, templates: templates, spare: true))
    print(String(format: "run %d: floor %.2f s, cold %.2f s (agent up after %.2f s), warm %.2f s (agent up after %.2f s), spare %.2f s",
                 i + 1, floor[i], cold[i].first, cold[i].boot, warm[i].first, warm[i].boot, spare[i].first))
}
print(String(format: "template saved (first warm run, boot + save + restore + run) in %.2f s", saveSeconds))
report("cold", cold, floor: median(floor))
report("warm", warm, floor: median(floor))
report("spare", spare, floor: median(floor))
