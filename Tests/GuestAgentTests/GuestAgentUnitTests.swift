#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import GuestAgent
import OCISpec
import QemuboxAPI
import SwiftProtobuf
import Testing
import Tracing
import TTRPCCodec
import TestSupport

@Suite struct MountOptionsTests {
    @Test func flagsAndDataAreSplit() {
        let parsed = MountOptions.parse(["ro", "nosuid", "nodev", "lowerdir=/a:/b", "index=off", "relatime"])
        #expect(parsed.flags == UInt(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_RELATIME))
        #expect(parsed.data == "lowerdir=/a:/b,index=off")
        #expect(!parsed.isBind)
    }

    @Test func laterOptionsWinAndRbindIsRecursive() {
        let parsed = MountOptions.parse(["ro", "rw", "rbind"])
        #expect(parsed.flags & UInt(MS_RDONLY) == 0)
        #expect(parsed.flags & UInt(MS_REC) != 0)
        #expect(parsed.isBind)
        #expect(parsed.data.isEmpty)
    }
}

@Suite struct CgroupStatsTests {
    static let files: [String: String] = [
        "pids.current": "3\n",
        "pids.max": "max\n",
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
        "memory.current": "2097152\n",
        "memory.max": "67108864\n",
        "memory.stat": "anon 1048576\nfile 524288\nkernel_stack 16384\npgfault 42\nworkingset_refault_file 7\n",
        "memory.events": "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n",
        "io.stat": "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    ]

    @Test func metricsFromSampleFiles() throws {
        let metrics = CgroupStats.metrics { Self.files[$0] }
        #expect(metrics.pids.current == 3)
        #expect(metrics.pids.limit == UInt64.max, "pids.max \"max\" is reported as containerd does")
        #expect(metrics.cpu.usageUsec == 1500)
        #expect(metrics.cpu.systemUsec == 500)
        #expect(metrics.memory.anon == 1_048_576)
        #expect(metrics.memory.usage == 2_097_152)
        #expect(metrics.memory.usageLimit == 67_108_864)
        #expect(metrics.memory.pgfault == 42)
        #expect(metrics.memory.workingsetRefault == 7)
        #expect(metrics.memoryEvents.oomKill == 1)
        #expect(metrics.memoryEvents.max == 5)
        #expect(metrics.io.usage.count == 1)
        #expect(metrics.io.usage.first?.major == 254)
        #expect(metrics.io.usage.first?.wbytes == 8192)
        #expect(Io_Containerd_Cgroups_V2_Metrics.protoMessageName == "io.containerd.cgroups.v2.Metrics")
    }

    @Test func missingFilesLeaveSectionsUnset() {
        let metrics = CgroupStats.metrics { _ in nil }
        #expect(!metrics.hasMemory)
        #expect(!metrics.hasPids)
    }

    @Test func cgroupPathFromProcFile() {
        #expect(CgroupStats.cgroupDirectory(procCgroup: "0::/default/c1\n", root: "/sys/fs/cgroup") == "/sys/fs/cgroup/default/c1")
        #expect(CgroupStats.cgroupDirectory(procCgroup: "0::/\n", root: "/sys/fs/cgroup") == "/sys/fs/cgroup")
        #expect(CgroupStats.cgroupDirectory(procCgroup: "1:name=systemd:/x\n") == nil)
    }
}

@Suite struct EventQueueTests {
    func exit(_ id: String) -> Containerd_Events_TaskExit {
        var event = Containerd_Events_TaskExit()
        event.containerID = id
        event.id = id
        return event
    }

    @Test func keepsOrderAndDropsOldestBeyondCapacity() async throws {
        let queue = EventQueue(capacity: 3)
        for i in 0..<5 { queue.publish(exit("c\(i)")) }
        #expect(queue.count == 3)
        #expect(queue.droppedCount == 2)
        var ids: [String] = []
        for _ in 0..<3 {
            let event = try #require(await queue.next())
            #expect(event.topic == "/tasks/exit")
            ids.append(try #require(try ContainerdEvent.unpack(event.event, as: Containerd_Events_TaskExit.self)).id)
        }
        #expect(ids == ["c2", "c3", "c4"])
    }

    @Test func waitingConsumerGetsEventAndCanBeReleased() async throws {
        let queue = EventQueue()
        async let first = queue.next()
        try await Task.sleep(for: .milliseconds(50))
        queue.publish(exit("late"))
        #expect(try #require(await first).topic == "/tasks/exit")
        async let second = queue.next()
        try await Task.sleep(for: .milliseconds(50))
        queue.cancelWaiter()
        #expect(await second == nil)
    }

    @Test func requeuedEventComesFirst() async throws {
        let queue = EventQueue()
        queue.publish(exit("a"))
        let a = try #require(await queue.next())
        queue.publish(exit("b"))
        queue.requeue(a)
        let next = try #require(await queue.next())
        #expect(try ContainerdEvent.unpack(next.event, as: Containerd_Events_TaskExit.self)?.id == "a")
    }
}

@Suite struct ErrorAndStatusTests {
    @Test func errorsMapToContainerdCodes() {
        #expect(GuestAgentError(.notFound, "x").ttrpcStatus.code == .notFound)
        #expect(GuestAgentError(.alreadyExists, "x").ttrpcStatus.code == .alreadyExists)
        #expect(GuestAgentError(.failedPrecondition, "x").ttrpcStatus.code == .failedPrecondition)
        #expect(GuestAgentError(.invalidArgument, "x").ttrpcStatus.code == .invalidArgument)
        #expect(GuestAgentError(.unavailable, "x").ttrpcStatus.code == .unavailable)
        #expect(TTRPCError.from(GuestAgentError(.notFound, "container c1 not found")).message == "container c1 not found")
        #expect(GuestAgentError.system("open /x", errno: ENOENT).code == .notFound)
    }

    @Test func waitStatusesBecomeContainerdExitStatuses() {
        #expect(Reaper.exitStatus(fromWaitStatus: 3 << 8) == 3)
        #expect(Reaper.exitStatus(fromWaitStatus: 0) == 0)
        #expect(Reaper.exitStatus(fromWaitStatus: 9) == 137)
        #expect(Reaper.exitStatus(fromWaitStatus: 15 | 0x80) == 143)
    }

    @Test func reaperHandsStatusesToWaitersAndIgnoresStaleOnes() async {
        let reaper = Reaper()
        // A status reaped before anyone waits is kept...
        let before = reaper.mark()
        reaper.deliver(pid: 4242, status: 1 << 8)
        #expect(await reaper.wait(pid: 4242, since: before) == 1 << 8)
        // ...but one older than the waiter's mark (a reused pid) is not.
        reaper.deliver(pid: 777, status: 2 << 8)
        let mark = reaper.mark()
        async let status = reaper.wait(pid: 777, since: mark)
        try? await Task.sleep(for: .milliseconds(50))
        reaper.deliver(pid: 777, status: 5 << 8)
        #expect(await status == 5 << 8)
    }

    @Test func latchTimesOutAndOpens() async {
        let latch = Latch()
        #expect(await latch.wait(timeout: .milliseconds(20)) == false)
        Task { latch.open() }
        #expect(await latch.wait(timeout: .seconds(5)) == true)
        #expect(await latch.wait() == true)
    }

    @Test func crunLogMessageIsExtracted() {
        let log = "{\"msg\": \"first\", \"level\": \"error\"}\n{\"msg\": \"executable file `nope` not found\", \"level\": \"error\"}\n"
        #expect(Runtime.lastLogMessage(log) == "executable file `nope` not found")
        #expect(Runtime.lastLogMessage("plain text\n") == "plain text")
    }
}

@Suite struct PID1Tests {
    @Test func mountTargetsComeFromMountinfoWithEscapesDecoded() {
        let text = """
        22 1 254:0 / / ro,relatime - erofs /dev/vda ro
        30 22 0:5 / /run rw - tmpfs tmpfs rw
        41 30 254:16 / /run/qemubox/bundles/c1/rootfs ro - erofs /dev/vdb ro
        42 30 0:40 / /run/with\\040space rw - tmpfs tmpfs rw
        """
        let targets = PID1.mountTargets(mountinfo: text)
        #expect(targets == ["/", "/run", "/run/qemubox/bundles/c1/rootfs", "/run/with space"])
    }

    @Test func earlyMountsCoverTheIssueList() {
        let targets = PID1.earlyMounts.map(\.target)
        for needed in ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/tmp", "/sys/fs/cgroup"] {
            #expect(targets.contains(needed), "missing \(needed)")
        }
        // Parents come before children.
        #expect(targets.firstIndex(of: "/dev")! < targets.firstIndex(of: "/dev/pts")!)
        #expect(targets.firstIndex(of: "/sys")! < targets.firstIndex(of: "/sys/fs/cgroup")!)
    }
}

/// The guest's tracer: records only under a sampled, well-formed `traceparent`, links its
/// spans, and sends a batch when the span that joined the host's trace ends.
@Suite struct GuestTracerTests {
    struct Carrier: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    static let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    @Test func traceparentFormat() {
        #expect(Traceparent.isValid(Self.parent))
        #expect(!Traceparent.isValid("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"))
        #expect(!Traceparent.isValid("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"))
        #expect(!Traceparent.isValid("00-00000000000000000000000000000000-b7ad6b7169203331-01"))
        #expect(!Traceparent.isValid("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"))
        #expect(!Traceparent.isValid("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01"))
        #expect(!Traceparent.isValid(""))
        #expect(Traceparent.isSampled(Self.parent) && !Traceparent.isSampled(String(Self.parent.dropLast()) + "2"))
    }

    @Test func recordsUnderASampledParentOnly() async throws {
        let events = EventQueue()
        let tracer = GuestTracer(events: events)
        for unsampled in [[:], ["traceparent": String(Self.parent.dropLast(2)) + "00"], ["traceparent": "garbage"]] {
            var context = ServiceContext.topLevel
            tracer.extract(unsampled, into: &context, using: Carrier())
            let span = tracer.startSpan("noop", context: context, ofKind: .server,
                                        at: DefaultTracerClock.now, function: "", file: "", line: 0)
            #expect(!span.isRecording)
            span.end()
        }
        #expect(events.count == 0)

        var context = ServiceContext.topLevel
        tracer.extract(["traceparent": Self.parent], into: &context, using: Carrier())
        let server = tracer.startSpan("Create", context: context, ofKind: .server,
                                      at: DefaultTracerClock.now, function: "", file: "", line: 0)
        #expect(server.isRecording)
        let crun = tracer.startSpan("crun create", context: server.context, ofKind: .client,
                                    at: DefaultTracerClock.now, function: "", file: "", line: 0)
        crun.attributes["qemubox.process"] = "c1"
        crun.setStatus(SpanStatus(code: .error, message: "exit 1"))
        crun.end()
        #expect(events.count == 0, "nothing is sent before the request's span ends")
        server.end()
        server.end()
        #expect(events.count == 1)
        let event = try #require(await events.next())
        #expect(event.topic == GuestTracer.topic)
        let batch = try Qemubox_Guest_V1_SpanBatch(unpackingAny: event.event)
        #expect(batch.spans.map(\.name) == ["crun create", "Create"])
        let (child, root) = (batch.spans[0], batch.spans[1])
        #expect(root.parentSpanID == 0 && root.traceparent == Self.parent && root.kind == 1)
        #expect(child.parentSpanID == root.spanID && child.traceparent == Self.parent && child.kind == 2)
        #expect(child.error && child.statusMessage == "exit 1" && child.attributes["qemubox.process"] == "c1")
        #expect(child.endUnixNano >= child.startUnixNano && root.endUnixNano >= child.endUnixNano)
    }
}

extension GuestTracerTests {
    /// With the host not draining events, span batches are dropped rather than pushing a
    /// task's exit out of the bounded queue.
    @Test func batchesYieldToContainerdEvents() throws {
        let events = EventQueue(capacity: 4)
        for _ in 0..<2 { events.push(Qemubox_Guest_V1_Event()) }
        let tracer = GuestTracer(events: events)
        var context = ServiceContext.topLevel
        tracer.extract(["traceparent": Self.parent], into: &context, using: Carrier())
        tracer.startSpan("Create", context: context, ofKind: .server, at: DefaultTracerClock.now,
                         function: "", file: "", line: 0).end()
        #expect(events.count == 2 && events.droppedCount == 0)
        #expect(tracer.droppedCount == 1)
    }
}

extension GuestTracerTests {
    /// Two requests at once: the one that ends first sends only its own spans; the other's
    /// finished child waits for its parent (else the host could not link it).
    @Test func concurrentRequestsGoInBatchesOfTheirOwn() async throws {
        let events = EventQueue()
        let tracer = GuestTracer(events: events)
        func request(_ parent: String) -> GuestSpan {
            var context = ServiceContext.topLevel
            tracer.extract(["traceparent": parent], into: &context, using: Carrier())
            return tracer.startSpan("request", context: context, ofKind: .server, at: DefaultTracerClock.now,
                                    function: "", file: "", line: 0)
        }
        let first = request(Self.parent)
        let second = request("00-11111111111111111111111111111111-2222222222222222-01")
        tracer.startSpan("crun delete", context: second.context, ofKind: .client, at: DefaultTracerClock.now,
                         function: "", file: "", line: 0).end()
        first.end()
        second.end()
        let one = try Qemubox_Guest_V1_SpanBatch(unpackingAny: try #require(await events.next()).event)
        let two = try Qemubox_Guest_V1_SpanBatch(unpackingAny: try #require(await events.next()).event)
        #expect(one.spans.map(\.traceparent) == [Self.parent])
        #expect(two.spans.map(\.name) == ["crun delete", "request"])
        #expect(two.spans[0].parentSpanID == two.spans[1].spanID)
    }
}
