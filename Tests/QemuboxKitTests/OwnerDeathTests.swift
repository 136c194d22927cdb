import Foundation
import Testing
import TestSupport
@testable import QemuboxKit

/// QEMU does not outlive its owner: when the owning process dies, PR_SET_PDEATHSIG
/// kills QEMU at once, and the state directory it left is finished by
/// `VMStateRecord.cleanupStale`.
@Suite(.serialized, .enabled(if: TestGuest.available)) struct OwnerDeathTests {
    /// The QemuboxRunVM example, built next to the test bundle by `swift build --build-tests`.
    static var runner: String? {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let path = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("QemuboxRunVM").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    @Test func qemuDiesWithItsOwnerAndCleanupFinishesTheStateDirectory() async throws {
        let runner = try #require(Self.runner, "QemuboxRunVM not built; run swift build --build-tests")
        try await TestGuest.with { initrd, dir in
            let stateDir = dir + "/state"
            let owner = Process()
            owner.executableURL = URL(fileURLWithPath: runner)
            owner.arguments = ["--kernel", TestGuest.kernelPath ?? "", "--initrd", initrd, "--state-dir", stateDir,
                               "--name", "orphan"]
            let out = Pipe()
            owner.standardOutput = out
            owner.standardError = FileHandle.nullDevice
            try owner.run()
            defer {
                if owner.isRunning { kill(owner.processIdentifier, SIGKILL) }
                owner.waitUntilExit()
            }
            // "running pid=N"
            var text = ""
            let handle = out.fileHandleForReading
            while !text.contains("\n") {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            let qemuPID = try #require(text.split(separator: "=").last.flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) },
                                       "runner said: \(text)")
            let record = try #require(try VMStateRecord.read(from: stateDir))
            #expect(record.pid == qemuPID)
            #expect(record.matchesLiveProcess())

            kill(owner.processIdentifier, SIGKILL)  // the owner dies without any cleanup
            owner.waitUntilExit()
            let deadline = ContinuousClock.now + .seconds(5)
            while record.matchesLiveProcess(), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(!record.matchesLiveProcess(), "QEMU \(qemuPID) outlived its owner")
            // What the owner could not remove, a later cleanup does.
            #expect(FileManager.default.fileExists(atPath: stateDir))
            #expect(try await VMStateRecord.cleanupStale(stateDirectory: stateDir) == .processGone)
            #expect(!FileManager.default.fileExists(atPath: stateDir))
        }
    }
}
