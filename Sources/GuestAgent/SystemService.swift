#if canImport(Glibc)
import Glibc
#endif
import CGuestAgentSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import QemuboxAPI
import SwiftProtobuf
import TTRPCCodec

/// `qemubox.guest.v1.System`: what only a VM has.
public final class SystemService: QemuboxGuestV1SystemService, Sendable {
    let events: EventQueue
    let runtimeVersion: @Sendable () async -> String
    let onShutdown: @Sendable (String) -> Void
    private let eventsConsumer = NIOLockedValueBox(0)

    /// - Parameter onShutdown: called (after the answer is sent) with the reason.
    public init(events: EventQueue, runtimeVersion: @escaping @Sendable () async -> String,
                onShutdown: @escaping @Sendable (String) -> Void) {
        self.events = events
        self.runtimeVersion = runtimeVersion
        self.onShutdown = onShutdown
    }

    public func info(_ request: Qemubox_Guest_V1_InfoRequest, context: TTRPCRequestContext) async throws -> Qemubox_Guest_V1_InfoResponse {
        var response = Qemubox_Guest_V1_InfoResponse()
        response.agentVersion = GuestAgentProtocol.version
        var names = utsname()
        if uname(&names) == 0 {
            response.kernelRelease = withUnsafeBytes(of: names.release) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
        }
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        response.uptimeNs = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        response.onlineCpus = UInt32(max(0, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        response.memoryTotalBytes = UInt64(qb_total_memory())
        let controllers = (try? String(contentsOfFile: "\(CgroupStats.root)/cgroup.subtree_control", encoding: .utf8)) ?? ""
        response.cgroupControllers = controllers.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        response.runtime = await runtimeVersion()
        return response
    }

    public func ping(_ request: Qemubox_Guest_V1_PingRequest, context: TTRPCRequestContext) async throws -> Qemubox_Guest_V1_PingResponse {
        var response = Qemubox_Guest_V1_PingResponse()
        response.payload = request.payload
        response.guestTime = Google_Protobuf_Timestamp(date: Date())
        return response
    }

    public func setTime(_ request: Qemubox_Guest_V1_SetTimeRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        guard request.hasTime else { throw GuestAgentError(.invalidArgument, "SetTime without a time") }
        var spec = timespec(tv_sec: Int(request.time.seconds), tv_nsec: Int(request.time.nanos))
        guard clock_settime(CLOCK_REALTIME, &spec) == 0 else { throw GuestAgentError.system("clock_settime") }
        return Google_Protobuf_Empty()
    }

    public func restored(_ request: Qemubox_Guest_V1_RestoredRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        guard request.entropy.count >= 32, request.entropy.count <= 4096 else {
            throw GuestAgentError(.invalidArgument, "Restored needs 32 to 4096 bytes of entropy, got \(request.entropy.count)")
        }
        if request.hasTime {
            var spec = timespec(tv_sec: Int(request.time.seconds), tv_nsec: Int(request.time.nanos))
            guard clock_settime(CLOCK_REALTIME, &spec) == 0 else { throw GuestAgentError.system("clock_settime") }
        }
        let seeded = request.entropy.withUnsafeBytes { raw -> Int32 in
            qb_add_entropy_and_reseed(raw.bindMemory(to: UInt8.self).baseAddress, Int32(raw.count))
        }
        guard seeded == 0 else { throw GuestAgentError.system("reseed the CRNG") }
        if !request.hostname.isEmpty {
            let name = Array(request.hostname.utf8)
            guard name.count <= 64, sethostname(request.hostname, name.count) == 0 else {
                throw GuestAgentError.system("sethostname \(request.hostname)")
            }
        }
        for device in Mounter.dataDisks() where qb_flush_block_device(device) != 0 {
            throw GuestAgentError.system("drop the cached blocks of \(device)")
        }
        PID1.log("restored from a template snapshot: clock set, CRNG reseeded, disk caches dropped")
        return Google_Protobuf_Empty()
    }

    public func mount(_ request: Qemubox_Guest_V1_MountRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        try await Blocking.run { try self.mountNow(request) }
    }

    private func mountNow(_ request: Qemubox_Guest_V1_MountRequest) throws -> SwiftProtobuf.Google_Protobuf_Empty {
        var done: [String] = []
        do {
            for m in request.mounts {
                try Mounter.mount(type: m.type, source: m.source, target: m.target, options: m.options)
                done.append(m.target)
            }
        } catch {
            // All or nothing: undo what this call mounted.
            for target in done.reversed() { try? Mounter.unmount(target, detach: true) }
            throw error
        }
        return Google_Protobuf_Empty()
    }

    public func unmount(_ request: Qemubox_Guest_V1_UnmountRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        try await Blocking.run { try self.unmountNow(request) }
    }

    private func unmountNow(_ request: Qemubox_Guest_V1_UnmountRequest) throws -> SwiftProtobuf.Google_Protobuf_Empty {
        for target in request.targets { try Mounter.unmount(target, detach: request.detach) }
        return Google_Protobuf_Empty()
    }

    public func mkdir(_ request: Qemubox_Guest_V1_MkdirRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        try await Blocking.run { try self.mkdirNow(request) }
    }

    private func mkdirNow(_ request: Qemubox_Guest_V1_MkdirRequest) throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let mode = mode_t(request.mode == 0 ? 0o755 : request.mode & 0o7777)
        for path in request.paths {
            guard path.hasPrefix("/") else { throw GuestAgentError(.invalidArgument, "path \(path) is not absolute") }
            try ensureDirectory(path, mode: mode)
        }
        return Google_Protobuf_Empty()
    }

    public func writeFile(_ request: Qemubox_Guest_V1_WriteFileRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        try await Blocking.run { try self.writeFileNow(request) }
    }

    private func writeFileNow(_ request: Qemubox_Guest_V1_WriteFileRequest) throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let path = request.path
        guard path.hasPrefix("/"), !path.hasSuffix("/") else { throw GuestAgentError(.invalidArgument, "path \(path) is not an absolute file path") }
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !dir.isEmpty { try ensureDirectory(dir) }
        let temp = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(request.mode == 0 ? 0o644 : request.mode & 0o7777))
        guard fd >= 0 else { throw GuestAgentError.system("create \(temp)") }
        var ok = true
        request.data.withUnsafeBytes { raw in
            var offset = 0
            guard let base = raw.baseAddress else { return }
            while offset < raw.count {
                let n = write(fd, base + offset, raw.count - offset)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { ok = false; return }
                offset += n
            }
        }
        let err = errno
        if ok { ok = fsync(fd) == 0 }
        close(fd)
        guard ok, rename(temp, path) == 0 else {
            let failure = GuestAgentError.system("write \(path)", errno: ok ? errno : err)
            unlink(temp)
            throw failure
        }
        return Google_Protobuf_Empty()
    }

    public func configureNetwork(_ request: Qemubox_Guest_V1_ConfigureNetworkRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        try await Blocking.run { try self.configureNetworkNow(request) }
    }

    private func configureNetworkNow(_ request: Qemubox_Guest_V1_ConfigureNetworkRequest) throws -> SwiftProtobuf.Google_Protobuf_Empty {
        try GuestNetwork.configure(request)
        PID1.debugLog("network: \(request.interfaces.map { "\($0.name) \($0.addresses)" }), \(request.routes.count) routes")
        return Google_Protobuf_Empty()
    }

    public func exportChanges(_ request: Qemubox_Guest_V1_ExportChangesRequest, context: TTRPCRequestContext,
                              writer: TTRPCMessageWriter<Qemubox_Guest_V1_ChangeRecord>) async throws {
        try await ChangeExporter.export(directory: request.directory) { try await writer.send($0) }
    }

    public func shutdown(_ request: Qemubox_Guest_V1_ShutdownRequest, context: TTRPCRequestContext) async throws -> SwiftProtobuf.Google_Protobuf_Empty {
        let reason = request.reason.isEmpty ? "shutdown requested by the host" : request.reason
        let onShutdown = self.onShutdown
        Task {
            // Let the answer reach the host first.
            try? await Task.sleep(for: .milliseconds(100))
            onShutdown(reason)
        }
        return Google_Protobuf_Empty()
    }

    public func events(_ request: Qemubox_Guest_V1_EventsRequest, context: TTRPCRequestContext, writer: TTRPCMessageWriter<Qemubox_Guest_V1_Event>) async throws {
        // The newest stream wins: an older one (from a vanished host) is released.
        let me = eventsConsumer.withLockedValue { value -> Int in
            value += 1
            return value
        }
        events.cancelWaiter()
        while eventsConsumer.withLockedValue({ $0 }) == me {
            guard let event = await withTaskCancellationHandler(operation: { await events.next() },
                                                                onCancel: { events.cancelWaiter() }) else {
                if Task.isCancelled { return }
                continue
            }
            do {
                try await writer.send(event)
            } catch {
                events.requeue(event)
                throw error
            }
        }
    }
}
