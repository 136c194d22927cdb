import Foundation
import NIOCore
import QemuboxAPI
import QemuboxKit
import TestSupport
import Testing

/// A container that never reads its stdin while the host keeps pushing: the agent's
/// stdin thread blocks on the full pipe (or pty), and nothing else may. CloseIO,
/// ResizePty, Pids, Exec's start and Kill answer (each bounded by a 15 s call timeout
/// that only a hang reaches), and the container is deleted.
@Suite(.serialized, .enabled(if: Fixture.available))
struct StdinBackpressureTests {

    @Test(arguments: [false, true])
    func controlCallsStayPromptWhileStdinIsFull(terminal: Bool) async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let container = try await LiveContainer.start(
                    in: dir, ["sh", "-c", "echo ready; sleep 1000"], terminal: terminal, stdin: true)
                do {
                    #expect(await container.stdout.waitFor("ready"))
                    let stdin = try #require(container.stdio.stdin)
                    // 16 MiB at a process that reads none of it: far beyond the pipe, the pty and
                    // the yamux window, so the agent's stdin thread is stuck in its write.
                    let written = Counter()
                    let pusher = Task {
                        let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 16 << 10)
                        for _ in 0..<1024 {
                            try await stdin.write(chunk)
                            written.add(chunk.readableBytes)
                        }
                    }
                    defer { pusher.cancel() }
                    // Twice the pipe's capacity accepted: the agent's stdin thread has filled the
                    // pipe and waits to write more (the stream's window then stops the pusher,
                    // at about 240 KiB here). With the agent before its fix, CloseIO and every
                    // call after it hung here (DeadlineExceeded).
                    #expect(await eventually(timeout: .seconds(60)) { written.value >= 128 << 10 }, "\(written.value)")
                    let agent = container.sandbox.agent
                    var pids = Containerd_Task_V2_PidsRequest()
                    pids.id = container.id
                    #expect(try await agent.task.pids(pids, options: .init(timeout: .seconds(15))).processes.count >= 1)
                    if terminal {
                        var resize = Containerd_Task_V2_ResizePtyRequest()
                        resize.id = container.id
                        resize.width = 80
                        resize.height = 20
                        _ = try await agent.task.resizePty(resize, options: .init(timeout: .seconds(15)))
                    }
                    var close = Containerd_Task_V2_CloseIORequest()
                    close.id = container.id
                    close.stdin = true
                    _ = try await agent.task.closeIO(close, options: .init(timeout: .seconds(15)))
                    #expect(try await agent.task.pids(pids, options: .init(timeout: .seconds(15))).processes.count >= 1)
                    var kill = Containerd_Task_V2_KillRequest()
                    kill.id = container.id
                    kill.signal = 9
                    kill.all = true
                    _ = try await agent.task.kill(kill, options: .init(timeout: .seconds(15)))
                    #expect(try await container.wait() == 137)
                } catch {
                    await container.finish()
                    throw error
                }
                await container.finish()
            }
        }
    }
}

/// Bytes counted across tasks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    func add(_ n: Int) { lock.withLock { total += n } }
    var value: Int { lock.withLock { total } }
}
