import Foundation
import Testing
import TestSupport
@testable import QMPClient

/// QMPClient against a real QEMU (`-M none`, paused: no guest needed for the protocol).
@Suite(.serialized) struct QMPClientQEMUTests {
    /// Runs QEMU with a QMP unix socket in a temp dir; kills and reaps it afterwards.
    private func withQEMU(arguments: @escaping @Sendable (String) -> [String] = { _ in ["-M", "none"] },
                          _ body: @escaping @Sendable (QMPClient, QEMUProcess) async throws -> Void) async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let socket = dir + "/qmp.sock"
                let qemu = Process()
                qemu.executableURL = URL(fileURLWithPath: Prerequisite.which("qemu-system-x86_64") ?? "/usr/bin/qemu-system-x86_64")
                qemu.arguments = arguments(dir) + ["-nodefaults", "-no-user-config", "-display", "none", "-S",
                                                   "-qmp", "unix:\(socket),server=on,wait=off"]
                qemu.standardInput = FileHandle.nullDevice
                try qemu.run()
                defer {
                    if qemu.isRunning { kill(qemu.processIdentifier, SIGKILL) }
                    qemu.waitUntilExit()
                }
                var client: QMPClient?
                for _ in 0..<200 where client == nil {
                    client = try? await QMPClient.connect(unixSocketPath: socket)
                    if client == nil { try await Task.sleep(for: .milliseconds(25)) }
                }
                let qmp = try #require(client, "QMP socket did not come up")
                try await body(qmp, QEMUProcess(process: qemu))
                await qmp.close()
            }
        }
    }

    /// A machine whose RAM is a shared file, saved with x-ignore-shared; then a
    /// restore from a stream that is not one fails with QEMU's reason.
    @Test(.enabled(if: Prerequisite.tools("qemu-system-x86_64")))
    func migrationSaveAndFailedRestore() async throws {
        let state = FileManager.default.temporaryDirectory.path + "/qmp-migration-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: state) }
        try await withQEMU(arguments: { dir in
            ["-M", "microvm,x-option-roms=off,memory-backend=ram", "-m", "32M",
             "-object", "memory-backend-file,id=ram,size=32M,mem-path=\(dir)/memory,share=on"]
        }) { qmp, _ in
            #expect(try await qmp.queryMigrate().status == nil)
            try await qmp.migrateSetCapabilities(["x-ignore-shared": true])
            try await qmp.migrate(uri: "exec:cat > \(state)")
            try await qmp.waitForMigration(timeout: .seconds(30))
            let info = try await qmp.queryMigrate()
            #expect(info.status == "completed" && info.isFinished)
            let size = (try FileManager.default.attributesOfItem(atPath: state)[.size] as? Int) ?? 0
            // Device state only: far less than the 32 MiB of RAM left in the shared file.
            #expect(size > 0 && size < 8 << 20, "state is \(size) bytes")
        }
        try Data("not a migration stream".utf8).write(to: URL(fileURLWithPath: state))
        try await withQEMU(arguments: { dir in
            ["-M", "microvm,x-option-roms=off,memory-backend=ram", "-m", "32M", "-incoming", "defer",
             "-object", "memory-backend-file,id=ram,size=32M,mem-path=\(dir)/memory,share=off"]
        }) { qmp, _ in
            try await qmp.migrateSetCapabilities(["x-ignore-shared": true])
            try await qmp.migrateIncoming(uri: "exec:cat \(state)")
            let failure = await #expect(throws: QMPError.self) { try await qmp.waitForMigration(timeout: .seconds(30)) }
            // QEMU 7.2 exits when an incoming migration fails (later ones may report `failed`).
            #expect(failure?.code == .connectionClosed || failure?.code == .commandFailed, "\(String(describing: failure))")
        }
    }

    @Test(.enabled(if: Prerequisite.tools("qemu-system-x86_64")))
    func statusStopContAndErrors() async throws {
        try await withQEMU { qmp, _ in
            #expect(qmp.greeting.major >= 7)
            #expect(qmp.greeting.capabilities.contains("oob"))
            let paused = try await qmp.queryStatus()
            #expect(paused.running == false)
            #expect(paused.status == "prelaunch")
            var events = qmp.events.makeAsyncIterator()
            try await qmp.cont()
            #expect(await events.next()?.kind == .resume)
            #expect(try await qmp.queryStatus().running)
            try await qmp.stop()
            #expect(await events.next()?.kind == .stop)
            #expect(try await qmp.queryStatus().status == "paused")

            let unknown = await #expect(throws: QMPError.self) { try await qmp.execute("no-such-command") }
            #expect(unknown?.code == .commandFailed)
            #expect(unknown?.qmpClass == "CommandNotFound")
            let badDevice = await #expect(throws: QMPError.self) { try await qmp.deviceDel(id: "absent") }
            #expect(badDevice?.qmpClass == "DeviceNotFound")

            let hmp = try await qmp.humanMonitorCommand("info version")
            #expect(hmp.contains("7."))
            let version = try await qmp.execute("query-version")
            #expect(version["qemu"]?["major"]?.intValue == Int64(qmp.greeting.major))
        }
    }

    @Test(.enabled(if: Prerequisite.tools("qemu-system-x86_64")))
    func concurrentCommandsAgainstQEMU() async throws {
        try await withQEMU { qmp, _ in
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<64 {
                    group.addTask {
                        if i % 2 == 0 { return try await qmp.queryStatus().status == "prelaunch" }
                        return try await qmp.execute("query-name").objectValue != nil
                    }
                }
                for try await ok in group { #expect(ok) }
            }
        }
    }

    @Test(.enabled(if: Prerequisite.tools("qemu-system-x86_64")))
    func chardevAddRemoveAndObjects() async throws {
        try await withQEMU { qmp, _ in
            try await qmp.chardevAdd(id: "c1", backend: ["type": "null", "data": [:]])
            let dup = await #expect(throws: QMPError.self) {
                try await qmp.chardevAdd(id: "c1", backend: ["type": "null", "data": [:]])
            }
            #expect(dup?.code == .commandFailed)
            try await qmp.chardevRemove(id: "c1")
            try await qmp.objectAdd(qomType: "rng-random", id: "rng9", properties: ["filename": "/dev/urandom"])
            try await qmp.objectDel(id: "rng9")
            let gone = await #expect(throws: QMPError.self) { try await qmp.objectDel(id: "rng9") }
            #expect(gone?.code == .commandFailed)
        }
    }

    @Test(.enabled(if: Prerequisite.tools("qemu-system-x86_64")))
    func quitGivesShutdownEventAndClosesAtOnce() async throws {
        try await withQEMU { qmp, qemu in
            let pending = Task { try await qmp.execute("query-status", timeout: .seconds(30)) }
            _ = try await pending.value
            var events = qmp.events.makeAsyncIterator()
            try await qmp.quit()
            let e = await events.next()
            #expect(e?.kind == .shutdown(guest: false, reason: .hostQMPQuit))
            await qmp.waitClosed()
            #expect(await events.next() == nil)
            let after = await #expect(throws: QMPError.self) { try await qmp.queryStatus() }
            #expect(after?.code == .connectionClosed)
            qemu.process.waitUntilExit()
            #expect(qemu.process.terminationStatus == 0)
        }
    }

    @Test(.enabled(if: Prerequisite.tools("qemu-system-x86_64")))
    func killedQEMUFailsPendingCommands() async throws {
        try await withQEMU { qmp, qemu in
            kill(qemu.process.processIdentifier, SIGKILL)
            await qmp.waitClosed()
            let e = await #expect(throws: QMPError.self) { try await qmp.queryStatus() }
            #expect(e?.code == .connectionClosed)
        }
    }

    @Test func connectToMissingSocketFails() async throws {
        let e = await #expect(throws: QMPError.self) {
            try await QMPClient.connect(unixSocketPath: "/nonexistent/qmp.sock")
        }
        #expect(e?.code == .connectFailed)
    }
}

/// Process is not Sendable; the tests only touch it from one task at a time.
struct QEMUProcess: @unchecked Sendable {
    let process: Process
}
