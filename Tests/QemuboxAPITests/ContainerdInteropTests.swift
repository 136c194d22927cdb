import Foundation
import NIOConcurrencyHelpers
import QemuboxAPI
import SwiftProtobuf
import Testing
import TestSupport
import TTRPCCodec

/// A tiny in-memory Task service: enough to check that containerd's own Go
/// client talks to the generated Swift server stubs.
final class MemoryTaskService: ContainerdTaskV2TaskService {
    private let tasks = NIOLockedValueBox([String: Containerd_Task_V2_CreateTaskRequest]())

    func create(_ request: Containerd_Task_V2_CreateTaskRequest,
                context: TTRPCRequestContext) async throws -> Containerd_Task_V2_CreateTaskResponse {
        let inserted = tasks.withLockedValue { tasks -> Bool in
            guard tasks[request.id] == nil else { return false }
            tasks[request.id] = request
            return true
        }
        guard inserted else { throw TTRPCError(.alreadyExists, "task \(request.id): already exists") }
        var response = Containerd_Task_V2_CreateTaskResponse()
        response.pid = 4242
        return response
    }

    func state(_ request: Containerd_Task_V2_StateRequest,
               context: TTRPCRequestContext) async throws -> Containerd_Task_V2_StateResponse {
        guard let task = tasks.withLockedValue({ $0[request.id] }) else {
            throw TTRPCError(.notFound, "task \(request.id): not found")
        }
        var response = Containerd_Task_V2_StateResponse()
        response.id = task.id
        response.bundle = task.bundle
        response.pid = 4242
        response.status = .running
        response.stdout = task.stdout
        response.terminal = task.terminal
        return response
    }

    func kill(_ request: Containerd_Task_V2_KillRequest,
              context: TTRPCRequestContext) async throws -> Google_Protobuf_Empty {
        guard request.signal == 9, request.all else { throw TTRPCError(.invalidArgument, "unexpected kill") }
        return Google_Protobuf_Empty()
    }
}

@Suite("containerd API: generated types and stubs against containerd's Go packages",
       .serialized, .enabled(if: Prerequisite.tools("go")))
struct ContainerdInteropTests {
    @Test("containerd's Go Task client calls the Swift Task service")
    func goTaskClient() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir + "/shim.sock"
            let server = TTRPCServer(services: [MemoryTaskService().ttrpcService])
            try await server.bind(unixDomainSocketPath: path)
            let output: Data
            do {
                output = try await GoPeer.run(try await GoPeer.build("containerd-peer"), ["task-client", "-socket", path])
            } catch {
                await server.shutdown()
                throw error
            }
            await server.shutdown()
            let json = try #require(try JSONSerialization.jsonObject(with: output) as? [String: Any])
            #expect(json["create_pid"] as? Int == 4242)
            let state = try #require(json["state"] as? [String: Any])
            #expect(state["id"] as? String == "c1")
            #expect(state["bundle"] as? String == "/run/bundle/c1")
            #expect(state["status"] as? String == "RUNNING")
            #expect(state["stdout"] as? String == "/fifo/out")
            #expect(state["terminal"] as? Bool == true)
            #expect(json["missing_is_not_found"] as? Bool == true)
            #expect(json["duplicate_is_already_exists"] as? Bool == true)
            #expect(json["checkpoint_is_not_implemented"] as? Bool == true)
            #expect(json["kill_error"] as? String == "<nil>")
        }
    }

    @Test("the Swift events client forwards a TaskExit that containerd's Go code decodes")
    func forwardEvent() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir + "/events.sock"
            let peer = try await PeerProcess.start(try await GoPeer.build("containerd-peer"), ["events-server", "-socket", path])
            defer { peer.stop() }
            let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
            var exit = Containerd_Events_TaskExit()
            exit.containerID = "c1"
            exit.id = "c1"
            exit.pid = 4242
            exit.exitStatus = 137
            exit.exitedAt = Google_Protobuf_Timestamp(date: Date())
            let events = ContainerdServicesEventsTtrpcV1EventsClient(client)
            _ = try await events.forward(try ContainerdEvent.forwardRequest(namespace: "default", event: exit))
            try await client.close()
            peer.stop()
            let line = try #require(peer.outputLines().first)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(json["topic"] as? String == "/tasks/exit")
            #expect(json["namespace"] as? String == "default")
            #expect(json["type_url"] as? String == "containerd.events.TaskExit")
            #expect(json["container_id"] as? String == "c1")
            #expect(json["exit_status"] as? Int == 137)
            #expect(json["pid"] as? Int == 4242)
        }
    }

    @Test("packing follows containerd's typeurl convention and unpacking accepts both forms")
    func typeURL() throws {
        var oom = Containerd_Events_TaskOOM()
        oom.containerID = "c9"
        let packed = try ContainerdEvent.pack(oom)
        #expect(packed.typeURL == "containerd.events.TaskOOM")
        #expect(try ContainerdEvent.unpack(packed, as: Containerd_Events_TaskOOM.self)?.containerID == "c9")
        let prefixed = try Google_Protobuf_Any(message: oom)
        #expect(try ContainerdEvent.unpack(prefixed, as: Containerd_Events_TaskOOM.self)?.containerID == "c9")
        #expect(try ContainerdEvent.unpack(packed, as: Containerd_Events_TaskExit.self) == nil)
        #expect(ContainerdEvent.topic(for: oom) == "/tasks/oom")
    }

    @Test("an unimplemented method of a generated service answers Unimplemented")
    func unimplementedDefault() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir + "/shim.sock"
            let server = TTRPCServer(services: [MemoryTaskService().ttrpcService])
            try await server.bind(unixDomainSocketPath: path)
            let client = ContainerdTaskV2TaskClient(try await TTRPCClient.connect(unixDomainSocketPath: path))
            let error = await #expect(throws: TTRPCError.self) {
                _ = try await client.pids(Containerd_Task_V2_PidsRequest())
            }
            #expect(error?.code == .unimplemented)
            try await client.client.close()
            await server.shutdown()
        }
    }
}
