import Foundation
import NIOConcurrencyHelpers
import QemuboxAPI
@testable import QemuboxShim
import SwiftProtobuf
import TestSupport
import Testing
import TTRPCCodec

/// containerd's side of event publishing: a ttrpc Events service on a unix socket.
final class EventSink: ContainerdServicesEventsTtrpcV1EventsService {
    let received = NIOLockedValueBox<[Containerd_Services_Events_Ttrpc_V1_Envelope]>([])
    func forward(_ request: Containerd_Services_Events_Ttrpc_V1_ForwardRequest, context: TTRPCRequestContext)
        async throws -> Google_Protobuf_Empty
    {
        received.withLockedValue { $0.append(request.envelope) }
        return Google_Protobuf_Empty()
    }
    var envelopes: [Containerd_Services_Events_Ttrpc_V1_Envelope] { received.withLockedValue { $0 } }
}

@Suite struct EventPublisherTests {
    @Test func forwardsInOrderWithContainerdsEnvelope() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-ev") { dir in
            let sink = EventSink()
            let server = TTRPCServer(services: [sink.ttrpcService])
            try await server.bind(unixDomainSocketPath: dir + "/events.sock")
            let publisher = EventPublisher(address: "unix://" + dir + "/events.sock", namespace: "ns1")
            var create = Containerd_Events_TaskCreate()
            create.containerID = "c1"
            create.pid = 7
            publisher.publish(create)
            for i in 0..<20 {
                var exit = Containerd_Events_TaskExit()
                exit.containerID = "c1"
                exit.id = "e\(i)"
                exit.exitStatus = UInt32(i)
                publisher.publish(exit)
            }
            await publisher.close()
            await server.shutdown()
            let envelopes = sink.envelopes
            #expect(envelopes.count == 21)
            #expect(envelopes.allSatisfy { $0.namespace == "ns1" })
            #expect(envelopes.first?.topic == "/tasks/create")
            #expect(envelopes.first?.event.typeURL == "containerd.events.TaskCreate")
            let exits = try envelopes.dropFirst().map { try Containerd_Events_TaskExit(serializedBytes: $0.event.value) }
            #expect(exits.map(\.id) == (0..<20).map { "e\($0)" })
            #expect(envelopes.dropFirst().allSatisfy { $0.topic == "/tasks/exit" })
        }
    }

    @Test func retriesUntilContainerdIsBack() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-ev") { dir in
            let publisher = EventPublisher(address: dir + "/events.sock", namespace: "ns1")
            var paused = Containerd_Events_TaskPaused()
            paused.containerID = "c1"
            publisher.publish(paused)
            try await Task.sleep(for: .milliseconds(300))
            let sink = EventSink()
            let server = TTRPCServer(services: [sink.ttrpcService])
            try await server.bind(unixDomainSocketPath: dir + "/events.sock")
            #expect(await eventually(timeout: .seconds(10)) { sink.envelopes.count == 1 })
            #expect(sink.envelopes.first?.topic == "/tasks/paused")
            await publisher.close()
            await server.shutdown()
        }
    }
}
