import EchoService
import Foundation
import NIOCore
import Testing
import TestSupport
import TTRPCCodec
import VsockTransport
import VsockTransportTestPeer
import VsockTransportTestVM

/// The full host↔guest path the shim will use: a real QEMU (TCG, microvm), a
/// virtio-serial port, yamux over it, and ttrpc on one yamux stream, served by a
/// static Swift program inside the guest, while echo streams share the session.
@Suite("ttrpc through QEMU: virtio-serial → yamux → ttrpc", .serialized)
struct TTRPCInGuestTests {
    static var prerequisites: Bool {
        let missing = EchoGuestVM.missingPrerequisites()
        if missing.isEmpty || Prerequisite.isCI { return true }
        FileHandle.standardError.write(Data(
            "SKIP: missing \(missing.joined(separator: ", ")); run scripts/install-deps.sh\n".utf8))
        return false
    }

    @Test("unary, concurrent, erroring and server-streaming calls to a ttrpc server in the guest",
          .enabled(if: prerequisites))
    func ttrpcToGuest() async throws {
        #expect(EchoGuestVM.missingPrerequisites() == [])
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let vm = try await runBlocking { try EchoGuestVM(directory: dir) }
                defer { vm.stop() }
                let session = try await vm.connect()
                // Ask the guest to serve ttrpc on this stream; it answers "ready" first.
                let control = try await session.openStream()
                try await control.write(ByteBuffer(string: "ttrpc\n"))
                var ready = ByteBuffer()
                while ready.readableBytes < 6, var chunk = try await control.read() { ready.writeBuffer(&chunk) }
                #expect(String(buffer: ready) == "ready\n", "console:\n\(vm.console())")
                let client = try await TTRPCClient(channel: try await control.makeChannel())

                var request = EchoRequest()
                request.payload = Data("hello guest".utf8)
                let reply = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                                  as: EchoResponse.self,
                                                  options: TTRPCCallOptions(timeout: .seconds(60), metadata: ["vm": "1"]))
                #expect(reply.payload == request.payload)
                #expect(reply.metadata.map { "\($0.key)=\($0.value)" } == ["vm=1"])

                // Echo streams on the same session while ttrpc calls run.
                async let echoed = YamuxTestPeer.echoMany(session, count: 16, maxSize: 32 * 1024)
                #expect(try await EchoCalls.concurrent(client, count: 100) == 100)
                #expect(try await echoed == 16)

                var failing = EchoRequest()
                failing.failCode = TTRPCError.Code.notFound.rawValue
                failing.failMessage = "no such process in the guest"
                await #expect(throws: TTRPCError(.notFound, "no such process in the guest")) {
                    _ = try await client.call(service: echoServiceName, method: "Echo", request: failing,
                                              as: EchoResponse.self)
                }

                #expect(try await EchoCalls.countStream(client, count: 50, size: 16 << 10) == 50)
                try await client.close()
                await session.close()
            }
        }
    }
}
