import Foundation
import Testing
import TestSupport
@testable import QemuboxKit

/// The console drain: rotation at the size limit, bounded tail, waiting, input.
@Suite struct ConsoleLogTests {
    @Test func rotatesAtTheLimitAndKeepsABoundedTail() async throws {
        try await TemporaryDirectory.with { dir in
            var fds: [Int32] = [-1, -1]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
            let log = dir + "/console.log"
            let console = try ConsoleLog(fd: fds[0], logPath: log,
                                         settings: ConsoleSettings(maxLogBytes: 8192, memoryTailBytes: 1024))
            let line = Array(String(repeating: "x", count: 99).utf8) + [10]
            for _ in 0..<300 { _ = line.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) } }
            _ = Array("MARKER-END\n".utf8).withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }
            #expect(await console.wait(for: "MARKER-END", timeout: .seconds(10)))
            #expect(console.tail.utf8.count <= 1024)
            // Input goes the other way.
            try console.write("typed\n")
            var buf = [UInt8](repeating: 0, count: 16)
            let n = read(fds[1], &buf, buf.count)
            #expect(String(decoding: buf[0..<max(n, 0)], as: UTF8.self) == "typed\n")
            close(fds[1])
            await console.waitFinished()
            let size = (try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? -1
            let rotated = (try FileManager.default.attributesOfItem(atPath: log + ".1")[.size] as? Int) ?? -1
            #expect(size > 0 && size <= 8192)
            #expect(rotated > 0 && rotated <= 8192)
            #expect(await console.wait(for: "never", timeout: .seconds(5)) == false, "closed console: no wait")
            #expect(throws: QemuboxError.self) { try console.write("late\n") }
        }
    }

    @Test func waitTimesOut() async throws {
        try await TemporaryDirectory.with { dir in
            var fds: [Int32] = [-1, -1]
            #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
            let console = try ConsoleLog(fd: fds[0], logPath: dir + "/c.log", settings: ConsoleSettings())
            let started = ContinuousClock.now
            #expect(await console.wait(for: "absent", timeout: .milliseconds(200)) == false)
            #expect(ContinuousClock.now - started < .seconds(60))  // it returns; loaded CI machines are slow
            close(fds[1])
            await console.waitFinished()
        }
    }
}
