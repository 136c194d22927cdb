import Foundation
import Testing
import TestSupport
@testable import QemuboxKit

/// Repeated boot/stop cycles leave nothing behind: fds, threads, files, children.
@Suite(.serialized, .enabled(if: TestGuest.available)) struct VMCycleTests {
    static func openDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    static func threads() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
    }

    @Test func twentyBootStopCyclesLeakNothing() async throws {
        try await TestGuest.with { initrd, dir in
            @Sendable func cycle(_ i: Int) async throws {
                let vm = VirtualMachine(TestGuest.machine("cycle\(i)", initrd: initrd),
                                        configuration: VMConfiguration(stateDirectory: dir + "/state\(i)"))
                try await vm.start(readiness: TestGuest.readiness)
                let reason = await vm.stop(StopPolicy(guestRequest: { try await vm.writeConsole("poweroff\n") }))
                #expect(reason.kind == .guestPoweroff, "cycle \(i): \(reason)")
            }
            try await cycle(0)  // warm-up: event loop, spawner thread, pools
            try await Task.sleep(for: .milliseconds(300))
            let fds0 = Self.openDescriptors()
            let threads0 = Self.threads()
            for i in 1...20 { try await cycle(i) }
            // Reaper and console threads end right after the exit; give them a moment.
            var fds = Self.openDescriptors()
            var threads = Self.threads()
            for _ in 0..<20 where fds > fds0 || threads > threads0 {
                try await Task.sleep(for: .milliseconds(100))
                fds = Self.openDescriptors()
                threads = Self.threads()
            }
            print("VMCycleTests: fds \(fds0) -> \(fds), threads \(threads0) -> \(threads) after 20 cycles")
            // Other suites run in parallel in this process; a per-cycle leak would show as ≥ 20.
            #expect(fds <= fds0 + 3, "fds \(fds0) -> \(fds)")
            #expect(threads <= threads0 + 3, "threads \(threads0) -> \(threads)")
            let left = try FileManager.default.contentsOfDirectory(atPath: dir)
            #expect(left == ["initrd.img"], "left behind: \(left)")
            let kids = TestGuest.children()
            #expect(!kids.contains { $0.comm.contains("qemu") }, "children: \(kids)")
            #expect(!kids.contains { $0.state == "Z" }, "zombies: \(kids)")
        }
    }
}
