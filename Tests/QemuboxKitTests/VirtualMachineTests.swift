import Foundation
import QMPClient
import Testing
import TestSupport
@testable import QemuboxKit

/// Boot, watch and stop a real QEMU (TCG) with the cloud kernel and a busybox initrd.
@Suite(.serialized, .enabled(if: TestGuest.available)) struct VirtualMachineTests {
    @Test func bootConsoleStatusStopContAndGuestPoweroffOnRequest() async throws {
        try await TestGuest.with { initrd, dir in
            let stateDir = dir + "/state"
            let port = dir + "/agent.sock"
            let disk = dir + "/disk.img"
            #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
            let m = TestGuest.machine("boot", initrd: initrd) {
                $0.disks = [Disk(id: "d0", path: disk), Disk(id: "d1", path: disk + "", readOnly: true, cache: .unsafe)]
                $0.serialPorts = [SerialPort(name: "org.qemubox.test", socketPath: port)]
            }
            let vm = VirtualMachine(m, configuration: VMConfiguration(stateDirectory: stateDir))
            #expect(await vm.state == .created)
            try await vm.start(readiness: TestGuest.readiness)
            #expect(await vm.state == .running)
            #expect(await vm.resolved?.host.accelerator.accelerator == (try AcceleratorDetector().decide(.auto).accelerator))
            #expect(await vm.resolved?.machineType == .microvm)
            #expect(await vm.consoleTail.contains(TestGuest.ready))
            #expect(FileManager.default.fileExists(atPath: stateDir + "/" + VMStateRecord.fileName))
            #expect(FileManager.default.fileExists(atPath: port), "QEMU listens on the serial port socket")
            let record = try #require(try VMStateRecord.read(from: stateDir))
            #expect(record.pid == (await vm.pid))
            #expect(record.matchesLiveProcess())

            let qmp = try #require(await vm.qmp)
            #expect(try await qmp.queryStatus().status == "running")
            let events = await vm.events()
            try await qmp.stop()
            #expect(try await qmp.queryStatus().status == "paused")
            try await qmp.cont()
            #expect(try await qmp.queryStatus().running)
            var it = events.makeAsyncIterator()
            #expect(await it.next()?.kind == .stop)
            #expect(await it.next()?.kind == .resume)

            try await vm.writeConsole("echo hello-guest\n")
            #expect(await vm.waitForConsole("ECHO:hello-guest", timeout: .seconds(20)))

            let reason = await vm.stop(StopPolicy(guestRequest: { try await vm.writeConsole("poweroff\n") }))
            #expect(reason.kind == .guestPoweroff, "\(reason)")
            #expect(reason.shutdownReason == .guestShutdown)
            #expect(reason.termination == .exited(0))
            #expect(await vm.state == .stopped)
            #expect(!TestGuest.processExists(record.pid))
            #expect(!FileManager.default.fileExists(atPath: stateDir), "state directory removed")
            #expect(!FileManager.default.fileExists(atPath: port), "serial port socket removed")
            #expect(await vm.stop().kind == .guestPoweroff, "stop is idempotent")
        }
    }

    @Test func guestPowersOffByItself() async throws {
        try await TestGuest.with { initrd, dir in
            let vm = VirtualMachine(TestGuest.machine("self-off", initrd: initrd, extraCommandLine: ["qbtest=poweroff"]),
                                    configuration: VMConfiguration(stateDirectory: dir + "/state"))
            try await vm.start()
            let reason = await vm.waitForExit()
            #expect(reason.kind == .guestPoweroff, "\(reason)")
            #expect(reason.consoleTail.contains(TestGuest.ready))
        }
    }

    @Test func stopFallsThroughPowerdownToQuit() async throws {
        try await TestGuest.with { initrd, dir in
            // The test guest runs no ACPI daemon, so the power button is ignored.
            let vm = VirtualMachine(TestGuest.machine("quit", initrd: initrd),
                                    configuration: VMConfiguration(stateDirectory: dir + "/state"))
            try await vm.start(readiness: TestGuest.readiness)
            let events = await vm.events()
            let started = ContinuousClock.now
            let reason = await vm.stop(StopPolicy(powerdownTimeout: .seconds(1), quitTimeout: .seconds(10)))
            #expect(reason.kind == .quit, "\(reason)")
            #expect(reason.shutdownReason == .hostQMPQuit)
            #expect(ContinuousClock.now - started < .seconds(10))
            var names: [String] = []
            for await e in events { names.append(e.name) }
            #expect(names.contains("POWERDOWN"))
            #expect(names.last == "SHUTDOWN")
        }
    }

    @Test func stopEscalatesToSIGKILLWhenQEMUDoesNotAnswer() async throws {
        try await TestGuest.with { initrd, dir in
            let vm = VirtualMachine(TestGuest.machine("hung", initrd: initrd),
                                    configuration: VMConfiguration(stateDirectory: dir + "/state"))
            try await vm.start(readiness: TestGuest.readiness)
            let pid = try #require(await vm.pid)
            kill(pid, SIGSTOP)  // QEMU freezes: QMP commands go unanswered.
            let reason = await vm.stop(StopPolicy(powerdownTimeout: .milliseconds(500), quitTimeout: .milliseconds(500)))
            #expect(reason.kind == .killed, "\(reason)")
            #expect(reason.termination == .signaled(SIGKILL))
            #expect(!TestGuest.processExists(pid))
        }
    }

    @Test func externalSIGKILLIsACrashAndReleasesEverything() async throws {
        try await TestGuest.with { initrd, dir in
            let stateDir = dir + "/state"
            let port = dir + "/p.sock"
            let vm = VirtualMachine(TestGuest.machine("crash", initrd: initrd) {
                $0.serialPorts = [SerialPort(name: "p", socketPath: port)]
            }, configuration: VMConfiguration(stateDirectory: stateDir))
            try await vm.start(readiness: TestGuest.readiness)
            let pid = try #require(await vm.pid)
            let qmp = try #require(await vm.qmp)
            kill(pid, SIGKILL)
            let reason = await vm.waitForExit()
            #expect(reason.kind == .crashed, "\(reason)")
            #expect(reason.termination == .signaled(SIGKILL))
            #expect(reason.shutdownReason == nil)
            #expect(!qmp.isOpen)
            #expect(!FileManager.default.fileExists(atPath: stateDir))
            #expect(!FileManager.default.fileExists(atPath: port))
            #expect(!TestGuest.children().contains { $0.pid == pid }, "reaped, no zombie")
            let after = await #expect(throws: QemuboxError.self) { try await vm.writeConsole("x\n") }
            #expect(after?.code == .invalidState)
        }
    }

    @Test func guestPanicIsReportedAsPanic() async throws {
        try await TestGuest.with { initrd, dir in
            let vm = VirtualMachine(TestGuest.machine("panic", initrd: initrd),
                                    configuration: VMConfiguration(stateDirectory: dir + "/state"))
            try await vm.start(readiness: TestGuest.readiness)
            let events = await vm.events()
            try await vm.writeConsole("panic\n")
            let started = ContinuousClock.now
            let reason = await vm.waitForExit()
            #expect(reason.kind == .guestPanic, "\(reason)")
            #expect(reason.shutdownReason == .guestPanic)
            #expect(reason.consoleTail.contains("Kernel panic"))
            #expect(ContinuousClock.now - started < .seconds(30))
            var sawPanicEvent = false
            for await e in events { if case .guestPanicked = e.kind { sawPanicEvent = true } }
            #expect(sawPanicEvent)
        }
    }

    @Test func panicWithoutPanicDeviceEndsAsGuestReboot() async throws {
        try await TestGuest.with { initrd, dir in
            // No pvpanic: `panic=-1` reboots, `-no-reboot` turns that into an exit.
            let vm = VirtualMachine(TestGuest.machine("panic2", initrd: initrd, extraCommandLine: ["qbtest=panic"]) {
                $0.panicDevice = false
            }, configuration: VMConfiguration(stateDirectory: dir + "/state"))
            try await vm.start()
            let reason = await vm.waitForExit()
            #expect(reason.kind == .guestReboot, "\(reason)")
            #expect(reason.consoleTail.contains("Kernel panic"))
        }
    }

    @Test func readinessFailureStopsTheMachine() async throws {
        try await TestGuest.with { initrd, dir in
            let stateDir = dir + "/state"
            let vm = VirtualMachine(TestGuest.machine("notready", initrd: initrd),
                                    configuration: VMConfiguration(stateDirectory: stateDir, readinessTimeout: .seconds(1)))
            let pid = PIDBox()
            let e = await #expect(throws: QemuboxError.self) {
                try await vm.start { vm in
                    pid.set(await vm.pid)
                    _ = await vm.waitForConsole("NEVER-PRINTED", timeout: .seconds(30))
                }
            }
            #expect(e?.code == .notReady)
            #expect(await vm.state == .stopped)
            #expect(await vm.exit?.kind == .killed)
            #expect(!FileManager.default.fileExists(atPath: stateDir))
            let qemu = try #require(pid.get())
            #expect(!TestGuest.processExists(qemu), "QEMU \(qemu) still there")
        }
    }

    @Test func missingKernelFailsCleanly() async throws {
        try await TemporaryDirectory.with { dir in
            let m = MachineDescription(name: "nokernel", kernel: KernelBoot(kernelPath: dir + "/absent"))
            let vm = VirtualMachine(m, configuration: VMConfiguration(stateDirectory: dir + "/state"))
            let e = await #expect(throws: QemuboxError.self) { try await vm.start() }
            #expect(e?.code == .spawnFailed)
            #expect(await vm.state == .stopped)
            #expect(await vm.exit?.kind == .neverStarted)
            #expect(!FileManager.default.fileExists(atPath: dir + "/state"))
        }
    }

    @Test func missingDiskFailsBeforeQEMUStarts() async throws {
        try await TestGuest.with { initrd, dir in
            let m = TestGuest.machine("nodisk", initrd: initrd) {
                $0.disks = [Disk(id: "d0", path: dir + "/does-not-exist.img")]
            }
            let vm = VirtualMachine(m, configuration: VMConfiguration(stateDirectory: dir + "/state"))
            let e = await #expect(throws: QemuboxError.self) { try await vm.start() }
            // The launcher opens every disk for QEMU: a missing one is its error, and no QEMU ran.
            #expect(e?.code == .spawnFailed)
            #expect(e?.message.contains("does-not-exist.img") == true, "\(String(describing: e))")
            #expect(await vm.exit?.kind == .neverStarted)
            #expect(!FileManager.default.fileExists(atPath: dir + "/state"))
        }
    }

    @Test func qemuRejectingArgumentsIsAStartFailureWithItsMessage() async throws {
        try await TestGuest.with { initrd, dir in
            // Zeros are no qcow2 image: QEMU itself refuses the drive.
            let image = dir + "/zeros.img"
            #expect(FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 16)))
            let m = TestGuest.machine("baddisk", initrd: initrd) {
                $0.disks = [Disk(id: "d0", path: image, format: "qcow2")]
            }
            let vm = VirtualMachine(m, configuration: VMConfiguration(stateDirectory: dir + "/state"))
            let e = await #expect(throws: QemuboxError.self) { try await vm.start() }
            #expect(e?.code == .startFailed)
            #expect(e?.message.contains("qcow2") == true, "\(String(describing: e))")
            #expect(await vm.exit?.kind == .crashed)
        }
    }

    @Test func cleanupStaleKillsARecordedQEMU() async throws {
        try await TestGuest.with { initrd, dir in
            let stateDir = dir + "/state"
            let vm = VirtualMachine(TestGuest.machine("stale", initrd: initrd),
                                    configuration: VMConfiguration(stateDirectory: stateDir))
            try await vm.start(readiness: TestGuest.readiness)
            let pid = try #require(await vm.pid)
            // As a later process would after the owner died: find it by the record, verify, kill.
            let outcome = try await VMStateRecord.cleanupStale(stateDirectory: stateDir)
            #expect(outcome == .killed(pid: pid))
            let reason = await vm.waitForExit()
            #expect(reason.termination == .signaled(SIGKILL))
            #expect(!FileManager.default.fileExists(atPath: stateDir))
            #expect(try await VMStateRecord.cleanupStale(stateDirectory: stateDir) == .nothingRecorded)
        }
    }

    @Test func cleanupStaleLeavesAReusedPidAlone() async throws {
        try await TemporaryDirectory.with { dir in
            // A record naming a live process that is not that QEMU (here: ourselves).
            let me = getpid()
            let record = VMStateRecord(pid: me, startTime: VMStateRecord.startTime(of: me) ?? 0,
                                       name: "not-me", binary: "/usr/bin/qemu-system-x86_64")
            try record.write(to: dir)
            #expect(!record.matchesLiveProcess())
            #expect(try await VMStateRecord.cleanupStale(stateDirectory: dir) == .processGone)
            #expect(!FileManager.default.fileExists(atPath: dir))
        }
    }

    /// QEMU's stderr is drained and capped on disk: a QEMU (or a guest making it log)
    /// that writes megabytes leaves at most twice the cap, and the tail still reaches the error.
    @Test func qemuStderrIsCappedOnDisk() async throws {
        try await TemporaryDirectory.with(prefix: "qemubox-vm") { dir in
            let fake = dir + "/noisy-qemu"
            try """
                #!/bin/sh
                head -c 3000000 /dev/zero | tr '\\0' x >&2
                echo >&2; echo LAST-WORDS >&2
                exit 1

                """.write(toFile: fake, atomically: true, encoding: .utf8)
            chmod(fake, 0o755)
            let m = MachineDescription(name: "noisy", kernel: KernelBoot(kernelPath: "/dev/null"))
            var configuration = VMConfiguration(stateDirectory: dir + "/state", qemuBinary: fake,
                                                hostFacts: HostFacts(accelerator: AcceleratorDecision(.tcg, reason: "test"),
                                                                     tscKHz: 1_000_000))
            configuration.removeStateDirectoryOnExit = false
            // A shell script is no QEMU for the jail's allow-list; the cap is what is tested here.
            configuration.jail = nil
            let vm = VirtualMachine(m, configuration: configuration)
            let e = await #expect(throws: QemuboxError.self) { try await vm.start() }
            #expect(e?.message.contains("LAST-WORDS") == true, "\(String(describing: e).suffix(300))")
            let sizes = ["qemu.stderr", "qemu.stderr.1"].map {
                ((try? FileManager.default.attributesOfItem(atPath: dir + "/state/" + $0))?[.size] as? Int) ?? 0
            }
            #expect(sizes.allSatisfy { $0 <= 256 << 10 } && sizes[0] + sizes[1] > 0, "\(sizes)")
        }
    }
}

/// A pid handed out of a `@Sendable` closure.
final class PIDBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int32?
    func set(_ v: Int32?) { lock.lock(); value = v; lock.unlock() }
    func get() -> Int32? { lock.lock(); defer { lock.unlock() }; return value }
}
