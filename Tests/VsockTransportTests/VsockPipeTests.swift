import Foundation
import TestSupport
import Testing
import VsockTransport

@Suite("AF_VSOCK pipe and guest CID allocation")
struct VsockPipeTests {
    @Test("without /dev/vhost-vsock, connecting fails at once with a clear error")
    func noVhostVsock() async throws {
        let start = ContinuousClock.now
        await #expect(throws: VsockTransportError.self) {
            _ = try await VsockPipe.connect(cid: 3, port: 1024, device: "/nonexistent/vhost-vsock")
        }
        do {
            _ = try await VsockPipe.connect(cid: 3, port: 1024, device: "/nonexistent/vhost-vsock")
        } catch let error as VsockTransportError {
            #expect(error.code == .vsockUnavailable)
            #expect(error.message.contains("virtio-serial"))
        }
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(!VsockPipe.hostSupportsVsock(device: "/nonexistent/vhost-vsock"))
    }

    @Test("concurrent allocators never hand out the same CID; released CIDs are reused")
    func allocateDistinct() async throws {
        try await TemporaryDirectory.with { dir in
            let allocator = GuestCIDAllocator(directory: dir + "/cids", range: 3...10)
            let leases = try await withThrowingTaskGroup(of: GuestCIDLease.self) { group in
                for _ in 0..<8 { group.addTask { try allocator.allocate() } }
                var all: [GuestCIDLease] = []
                for try await lease in group { all.append(lease) }
                return all
            }
            #expect(Set(leases.map(\.cid)) == Set(3...10))
            #expect(throws: VsockTransportError(.cidExhausted, "all 8 CIDs in 3...10 are locked in \(dir)/cids")) {
                _ = try allocator.allocate()
            }
            let freed = leases[2].cid
            leases[2].release()
            #expect(try allocator.allocate().cid == freed)
        }
    }

    @Test("a crashed holder's CID becomes free", .enabled(if: Prerequisite.tools("flock")))
    func crashedHolder() async throws {
        try await TemporaryDirectory.with { dir in
            let cids = dir + "/cids"
            try FileManager.default.createDirectory(atPath: cids, withIntermediateDirectories: true)
            // Another process (think: a shim) holds CID 5.
            let holder = Process()
            holder.executableURL = URL(fileURLWithPath: "/bin/sh")
            // One process holds the lock (the shell execs into sleep, keeping fd 9).
            holder.arguments = ["-c", "exec 9>\"$1\" && flock -n 9 && exec sleep 60", "sh", cids + "/5.lock"]
            try holder.run()
            defer {
                if holder.isRunning { kill(holder.processIdentifier, SIGKILL) }
                holder.waitUntilExit()
            }
            let allocator = GuestCIDAllocator(directory: cids, range: 5...6)
            var held: GuestCIDLease?
            for _ in 0..<100 {
                held = try allocator.tryLock(5)
                if held == nil { break }
                held?.release()
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(held == nil, "the holder never took its lock")
            #expect(try allocator.allocate(preferred: 5).cid == 6)
            // The holder crashes: the kernel drops its lock.
            kill(holder.processIdentifier, SIGKILL)
            holder.waitUntilExit()
            #expect(try allocator.allocate(preferred: 5).cid == 5)
        }
    }
}
