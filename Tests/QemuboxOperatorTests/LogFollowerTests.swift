import Foundation
@testable import QemuboxOperator
import Synchronization
import TestSupport
import Testing

/// `console`/`logs` printing and following on files rotated the way QemuboxKit's ConsoleLog
/// rotates them (rename to `.1`, then a new file).
@Suite struct LogFollowerTests {
    static func append(_ path: String, _ text: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
        try handle.close()
    }

    @Test func printsThePreviousGenerationFirst() throws {
        try TemporaryDirectory.withSync(prefix: "qbx-log") { dir in
            try "old 1\nold 2\n".write(toFile: dir + "/console.log.1", atomically: false, encoding: .utf8)
            try "new 1\n".write(toFile: dir + "/console.log", atomically: false, encoding: .utf8)
            var out: [UInt8] = []
            let end = try LogFollower(path: dir + "/console.log").run(follow: false) { out += $0 }
            #expect(end == .printed)
            #expect(String(decoding: out, as: UTF8.self) == "old 1\nold 2\nnew 1\n")
            // No log yet: nothing printed, no error.
            var none: [UInt8] = []
            try LogFollower(path: dir + "/qemu.stderr").run(follow: false) { none += $0 }
            #expect(none.isEmpty)
        }
    }

    @Test func followsAppendsAndRotationsUntilTheDirectoryGoes() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-log") { base in
            let dir = base + "/vm"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let log = dir + "/console.log"
            try "boot\n".write(toFile: log, atomically: false, encoding: .utf8)
            let output = Mutex<[UInt8]>([])
            let text = { String(decoding: output.withLock { $0 }, as: UTF8.self) }
            let ended = Mutex<LogFollower.End?>(nil)
            let thread = Thread {
                let end = try? LogFollower(path: log).run(follow: true) { bytes in output.withLock { $0 += bytes } }
                ended.withLock { $0 = end }
            }
            thread.start()
            #expect(await eventually(timeout: .seconds(10)) { text() == "boot\n" })
            try Self.append(log, "line 2\n")
            #expect(await eventually(timeout: .seconds(10)) { text() == "boot\nline 2\n" })
            // Rotation: the writer renames the full file and starts a new one.
            try Self.append(log, "last of the first\n")
            #expect(rename(log, log + ".1") == 0)
            try "first of the second\n".write(toFile: log, atomically: false, encoding: .utf8)
            #expect(await eventually(timeout: .seconds(10)) { text().hasSuffix("first of the second\n") })
            try Self.append(log, "more\n")
            #expect(await eventually(timeout: .seconds(10)) { text().hasSuffix("more\n") })
            #expect(text() == "boot\nline 2\nlast of the first\nfirst of the second\nmore\n")
            // The task is deleted: its directory goes, and following ends by itself.
            try FileManager.default.removeItem(atPath: dir)
            #expect(await eventually(timeout: .seconds(10)) { ended.withLock { $0 } == .directoryRemoved })
        }
    }
}
