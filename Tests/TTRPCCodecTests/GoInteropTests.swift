import Foundation
import EchoService
import Testing
import TestSupport
@testable import TTRPCCodec

/// Interop with Go `github.com/containerd/ttrpc` 1.1.1 (Debian), the library
/// containerd itself uses. Go ttrpc 1.1.1 speaks protocol 1.0 (unary only), so
/// streaming interop is covered by the golden-byte tests and the Swift peers.
@Suite("Interop with Go ttrpc", .serialized, .enabled(if: Prerequisite.tools("go")))
struct GoInteropTests {
    struct CallResult: Decodable {
        var code: Int32
        var message: String
        var payload: String?
        var payload_len: Int
        var metadata: [String]?
        var timeout_nano: Int64
        var elapsed_ms: Int64
    }

    static func goClient(_ socket: String, _ scenario: String, n: Int = 1000) async throws -> [String: CallResult] {
        let peer = try await GoPeer.build("ttrpc-peer")
        let output = try await GoPeer.run(peer, ["client", "-socket", socket, "-scenario", scenario, "-n", "\(n)"])
        return try JSONDecoder().decode([String: CallResult].self, from: output)
    }

    // MARK: Go client → Swift server

    @Test("Go client → Swift server: unary, empty reply, metadata, deadline propagation")
    func goClientEcho() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let results = try await Self.goClient(path, "echo")
                let echo = try #require(results["echo"])
                #expect(echo.code == 0 && echo.payload == "hello from go", "\(echo)")
                #expect(echo.metadata == ["k1=a", "k1=b", "k2=c"])
                #expect(echo.timeout_nano > 0 && echo.timeout_nano <= 30_000_000_000)
                let empty = try #require(results["empty"])
                #expect(empty.code == 0 && empty.payload_len == 0)
            }
        }
    }

    @Test("Go client → Swift server: error codes and messages, Unimplemented")
    func goClientErrors() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let results = try await Self.goClient(path, "errors")
                #expect(results["fail"]?.code == TTRPCError.Code.notFound.rawValue)
                #expect(results["fail"]?.message == "no such container")
                #expect(results["fail_precondition"]?.code == TTRPCError.Code.failedPrecondition.rawValue)
                #expect(results["unknown_service"]?.code == TTRPCError.Code.unimplemented.rawValue)
                #expect(results["unknown_service"]?.message == "service qemubox.test.v1.Nope")
                #expect(results["unknown_method"]?.code == TTRPCError.Code.unimplemented.rawValue)
                #expect(results["unknown_method"]?.message == "method Nope")
            }
        }
    }

    @Test("Go client → Swift server: the handler's deadline comes from timeout_nano")
    func goClientDeadline() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let results = try await Self.goClient(path, "deadline")
                let sleep = try #require(results["sleep"])
                // Go's client gives up at its own deadline (ctx.Err(), surfaced as Unknown) at the
                // same moment the server answers DeadlineExceeded; either way the call ends on time.
                #expect(sleep.code == TTRPCError.Code.deadlineExceeded.rawValue
                        || (sleep.code == TTRPCError.Code.unknown.rawValue && sleep.message == "context deadline exceeded"))
                #expect(sleep.elapsed_ms >= 250 && sleep.elapsed_ms < 4500)  // long before the 5 s sleep
                #expect(results["after"]?.payload == "still alive")
            }
        }
    }

    @Test("Go client → Swift server: a 5 MiB request gets ResourceExhausted, the connection survives")
    func goClientOversize() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let results = try await Self.goClient(path, "oversize")
                let oversize = try #require(results["oversize"])
                #expect(oversize.code == TTRPCError.Code.resourceExhausted.rawValue)
                #expect(oversize.message.hasPrefix("message length 52429"))
                #expect(results["after"]?.payload == "still alive")
            }
        }
    }

    @Test("Go client → Swift server: 1,000 concurrent calls")
    func goClientConcurrent() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { server, path in
                let peer = try await GoPeer.build("ttrpc-peer")
                let output = try await GoPeer.run(peer, ["client", "-socket", path, "-scenario", "concurrent", "-n", "1000"])
                struct Summary: Decodable { var ok: Int; var bad: Int; var first_error: String? }
                let summary = try JSONDecoder().decode(Summary.self, from: output)
                #expect(summary.ok == 1000, "first error: \(summary.first_error ?? "none")")
                #expect(summary.bad == 0)
                // The Go client has exited: its connection is gone from the server.
                #expect(await eventually { server.connectionCount == 0 })
            }
        }
    }

    // MARK: Swift client → Go server

    static func withGoServer<T>(_ body: (TTRPCClient) async throws -> T) async throws -> T {
        try await TemporaryDirectory.with { dir in
            let path = dir + "/go.sock"
            let server = try await PeerProcess.start(try await GoPeer.build("ttrpc-peer"), ["server", "-socket", path])
            defer { server.stop() }
            let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
            do {
                let result = try await body(client)
                try await client.close()
                return result
            } catch {
                try? await client.close()
                throw error
            }
        }
    }

    @Test("Swift client → Go server: unary, empty reply, metadata, deadline propagation")
    func swiftClientEcho() async throws {
        try await Self.withGoServer { client in
            var request = EchoRequest()
            request.payload = Data("hello from swift".utf8)
            let options = TTRPCCallOptions(timeout: .seconds(60), metadata: ["K1": "a", "k1": "b", "k2": "c"])
            let reply = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                              as: EchoResponse.self, options: options)
            #expect(reply.payload == request.payload)
            #expect(reply.metadata.map { "\($0.key)=\($0.value)" } == ["k1=a", "k1=b", "k2=c"])
            #expect(reply.timeoutNano > 0 && reply.timeoutNano <= 60_000_000_000)
            let empty = try await client.unary(service: echoServiceName, method: "Echo", payload: Data())
            #expect(empty.isEmpty)
        }
    }

    @Test("Swift client → Go server: error codes and messages, Unimplemented")
    func swiftClientErrors() async throws {
        try await Self.withGoServer { client in
            for code in [TTRPCError.Code.notFound, .alreadyExists, .failedPrecondition, .invalidArgument,
                         .unavailable, .permissionDenied] {
                var request = EchoRequest()
                request.failCode = code.rawValue
                request.failMessage = "failed with \(code)"
                await #expect(throws: TTRPCError(code, "failed with \(code)")) {
                    _ = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                              as: EchoResponse.self)
                }
            }
            await #expect(throws: TTRPCError(.unimplemented, "service nope.Service")) {
                _ = try await client.unary(service: "nope.Service", method: "Echo", payload: Data())
            }
            await #expect(throws: TTRPCError(.unimplemented, "method Nope")) {
                _ = try await client.unary(service: echoServiceName, method: "Nope", payload: Data())
            }
        }
    }

    @Test("Swift client → Go server: deadline exceeded, then the connection still works")
    func swiftClientDeadline() async throws {
        try await Self.withGoServer { client in
            var request = EchoRequest()
            request.sleepMs = 10_000
            let start = ContinuousClock.now
            let error = await #expect(throws: TTRPCError.self) {
                _ = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                          as: EchoResponse.self, options: TTRPCCallOptions(timeout: .milliseconds(300)))
            }
            #expect(error?.code == .deadlineExceeded)
            #expect(ContinuousClock.now - start < .seconds(9))  // long before the 10 s sleep
            // The Go server answers the expired call later; the late response is dropped.
            try await Task.sleep(for: .milliseconds(100))
            var ping = EchoRequest()
            ping.payload = Data("after".utf8)
            let reply = try await client.call(service: echoServiceName, method: "Echo", request: ping, as: EchoResponse.self)
            #expect(reply.payload == ping.payload)
        }
    }

    @Test("Swift client → Go server: oversize request rejected locally, oversize reply discarded")
    func swiftClientOversize() async throws {
        try await Self.withGoServer { client in
            var big = EchoRequest()
            big.payload = Data(count: 5 << 20)
            let requestError = await #expect(throws: TTRPCError.self) {
                _ = try await client.call(service: echoServiceName, method: "Echo", request: big, as: EchoResponse.self)
            }
            #expect(requestError?.code == .resourceExhausted)
            var bigReply = EchoRequest()
            bigReply.responseSize = 5 << 20  // Go 1.1.1 sends it; we must skip it
            let replyError = await #expect(throws: TTRPCError.self) {
                _ = try await client.call(service: echoServiceName, method: "Echo", request: bigReply, as: EchoResponse.self)
            }
            #expect(replyError?.code == .resourceExhausted)
            var ping = EchoRequest()
            ping.payload = Data("after".utf8)
            let reply = try await client.call(service: echoServiceName, method: "Echo", request: ping,
                                              as: EchoResponse.self)
            #expect(reply.payload == ping.payload)
        }
    }

    @Test("Swift client → Go server: 1,000 concurrent calls")
    func swiftClientConcurrent() async throws {
        try await Self.withGoServer { client in
            let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<1000 {
                    group.addTask {
                        var request = EchoRequest()
                        request.payload = Data("call-\(index)".utf8)
                        request.sleepMs = Int64(index % 7)
                        let reply = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                                          as: EchoResponse.self)
                        return reply.payload == request.payload
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(ok == 1000)
        }
    }
}
