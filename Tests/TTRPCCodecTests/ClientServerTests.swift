import Foundation
import EchoService
import NIOCore
import NIOPosix
import Testing
import TestSupport
@testable import TTRPCCodec

@Suite("Swift client ↔ Swift server over a unix socket")
struct ClientServerTests {
    @Test("unary echo with metadata and deadline")
    func unaryEcho() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                var request = EchoRequest()
                request.payload = Data("hello".utf8)
                let options = TTRPCCallOptions(timeout: .seconds(60), metadata: ["K1": "a", "k1": "b", "k2": "c"])
                let response = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                                     as: EchoResponse.self, options: options)
                #expect(response.payload == Data("hello".utf8))
                #expect(response.metadata.map { "\($0.key)=\($0.value)" } == ["k1=a", "k1=b", "k2=c"])
                #expect(response.timeoutNano > 0 && response.timeoutNano <= 60_000_000_000)
                // An empty request gets an empty, zero-length reply.
                let empty = try await client.unary(service: echoServiceName, method: "Echo", payload: Data())
                #expect(empty.isEmpty)
                try await client.close()
            }
        }
    }

    @Test("errors keep their code and message; unknown service/method are Unimplemented")
    func errors() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                var request = EchoRequest()
                request.failCode = TTRPCError.Code.alreadyExists.rawValue
                request.failMessage = "container exists"
                await #expect(throws: TTRPCError(.alreadyExists, "container exists")) {
                    _ = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                              as: EchoResponse.self)
                }
                await #expect(throws: TTRPCError(.unimplemented, "service nope.Service")) {
                    _ = try await client.unary(service: "nope.Service", method: "Echo", payload: Data())
                }
                await #expect(throws: TTRPCError(.unimplemented, "method Nope")) {
                    _ = try await client.unary(service: echoServiceName, method: "Nope", payload: Data())
                }
                // An undecodable payload (truncated varint) is Internal, as in Go.
                let error = await #expect(throws: TTRPCError.self) {
                    _ = try await client.unary(service: echoServiceName, method: "Echo", payload: Data([0x20]))
                }
                #expect(error?.code == .internal)
                try await client.close()
            }
        }
    }

    @Test("a stream whose consumer falls behind fails at its byte cap; the connection and its total recover")
    func streamByteCaps() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                var configuration = TTRPCClient.Configuration()
                configuration.maxBufferedStreamBytes = 1 << 20
                configuration.maxBufferedBytes = 3 << 19
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path, configuration: configuration)
                var flood = CountRequest()
                flood.count = 100
                flood.size = 64 << 10
                // Nobody reads: 100 × 64 KiB would be buffered; the stream fails at 1 MiB.
                let unread = try await client.stream(service: echoServiceName, method: "Count", kind: .serverStreaming,
                                                     payload: try flood.serializedData())
                let error = await #expect(throws: TTRPCError.self) { _ = try await unread.response() }
                #expect(error?.code == .resourceExhausted)
                #expect(error?.message.contains("stream's limit of 1048576") == true, "\(String(describing: error))")
                // What it buffered is released once its messages are dropped unread.
                var drained = 0
                do {
                    for try await _ in unread.messages { drained += 1 }
                } catch {}
                #expect(drained > 0 && drained <= 16)
                // The connection lives on, and its total is back: 10 × 64 KiB fits again.
                var small = flood
                small.count = 10
                let ok = try await client.stream(service: echoServiceName, method: "Count", kind: .serverStreaming,
                                                 payload: try small.serializedData())
                _ = try await ok.response()
                var received = 0
                for try await _ in ok.messages { received += 1 }
                #expect(received == 10)
                var echo = EchoRequest()
                echo.payload = Data("still here".utf8)
                let reply = try await client.call(service: echoServiceName, method: "Echo", request: echo, as: EchoResponse.self)
                #expect(reply.payload == Data("still here".utf8))
                try await client.close()
            }
        }
    }

    @Test("a deadline fails the call on time and cancels the handler; the connection lives on")
    func deadline() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { server, path in
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                var request = EchoRequest()
                request.sleepMs = 10_000
                let start = ContinuousClock.now
                await #expect(throws: TTRPCError(.deadlineExceeded, "context deadline exceeded")) {
                    _ = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                              as: EchoResponse.self, options: TTRPCCallOptions(timeout: .milliseconds(200)))
                }
                #expect(ContinuousClock.now - start < .seconds(9))  // long before the handler's 10 s
                let ok = try await client.unary(service: echoServiceName, method: "Echo", payload: Data())
                #expect(ok.isEmpty)
                try await client.close()
                _ = server
            }
        }
    }

    @Test("a client's default timeout bounds calls that name none; unbounded and explicit ones keep theirs")
    func defaultTimeout() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                var configuration = TTRPCClient.Configuration()
                configuration.defaultTimeout = .milliseconds(300)
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path, configuration: configuration)
                var slow = EchoRequest()
                slow.sleepMs = 1_000
                await #expect(throws: TTRPCError(.deadlineExceeded, "context deadline exceeded")) {
                    _ = try await client.call(service: echoServiceName, method: "Echo", request: slow, as: EchoResponse.self)
                }
                // Unbounded and an explicit, longer timeout both outlast the default.
                _ = try await client.call(service: echoServiceName, method: "Echo", request: slow, as: EchoResponse.self,
                                          options: .unbounded)
                _ = try await client.call(service: echoServiceName, method: "Echo", request: slow, as: EchoResponse.self,
                                          options: TTRPCCallOptions(timeout: .seconds(30)))
                try await client.close()
            }
        }
    }

    @Test("task cancellation ends the call with Canceled")
    func cancellation() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                var request = EchoRequest()
                request.sleepMs = 10_000
                let call = Task {
                    try await client.call(service: echoServiceName, method: "Echo", request: request,
                                          as: EchoResponse.self)
                }
                try await Task.sleep(for: .milliseconds(100))
                call.cancel()
                await #expect(throws: TTRPCError(.cancelled, "context canceled")) { _ = try await call.value }
                try await client.close()
            }
        }
    }

    @Test("server streaming, client streaming and bidirectional streaming")
    func streaming() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                var count = CountRequest()
                count.count = 500
                count.size = 1000
                var indices: [Int64] = []
                for try await message in try await client.serverStream(
                    service: echoServiceName, method: "Count", request: count, as: CountResponse.self) {
                    #expect(message.payload.count == 1000)
                    indices.append(message.index)
                }
                #expect(indices == Array(0..<500))

                let sum = try await client.clientStream(service: echoServiceName, method: "Sum",
                                                        requestType: SumRequest.self, as: SumResponse.self) { send in
                    for value in 1...100 {
                        var request = SumRequest()
                        request.value = Int64(value)
                        try await send(request)
                    }
                }
                #expect(sum.total == 5050 && sum.messages == 100)

                // An empty client stream still gets its reply.
                let none = try await client.clientStream(service: echoServiceName, method: "Sum",
                                                         requestType: SumRequest.self, as: SumResponse.self) { _ in }
                #expect(none.total == 0 && none.messages == 0)

                let chat = try await client.stream(service: echoServiceName, method: "Chat",
                                                   kind: .bidirectionalStreaming)
                var replies: [String] = []
                var iterator = chat.messages.makeAsyncIterator()
                for word in ["one", "two", "three"] {
                    var request = EchoRequest()
                    request.payload = Data(word.utf8)
                    try await chat.send(try request.serializedData())
                    let reply = try #require(try await iterator.next())
                    replies.append(String(decoding: try EchoResponse(serializedBytes: reply).payload, as: UTF8.self))
                }
                try await chat.closeSend()
                #expect(try await iterator.next() == nil)
                _ = try await chat.response()
                #expect(replies == ["one", "two", "three"])
                try await client.close()
            }
        }
    }

    @Test("a slow handler never stalls other calls on the same connection")
    func slowStreamDoesNotStall() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                var slow = EchoRequest()
                slow.sleepMs = 60_000
                let slowCall = Task {
                    try await client.call(service: echoServiceName, method: "Echo", request: slow, as: EchoResponse.self)
                }
                // A stream whose consumer never reads must not block the read loop either.
                var count = CountRequest()
                count.count = 200
                count.size = 10_000
                let unread = try await client.stream(service: echoServiceName, method: "Count", kind: .serverStreaming,
                                                     payload: try count.serializedData())
                for index in 0..<50 {
                    var request = EchoRequest()
                    request.payload = Data("fast \(index)".utf8)
                    let reply = try await client.call(service: echoServiceName, method: "Echo", request: request,
                                                      as: EchoResponse.self)
                    #expect(reply.payload == request.payload)
                }
                // All fast calls completed while the slow one is still running (it sleeps a minute).
                unread.cancel()
                slowCall.cancel()
                await #expect(throws: TTRPCError(.cancelled, "context canceled")) { _ = try await slowCall.value }
                try await client.close()
            }
        }
    }

    @Test("1,000 concurrent calls on one connection")
    func concurrentCalls() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                let ok = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for index in 0..<1000 {
                        group.addTask {
                            var request = EchoRequest()
                            request.payload = Data("call-\(index)".utf8)
                            request.sleepMs = Int64(index % 7)
                            let reply = try await client.call(service: echoServiceName, method: "Echo",
                                                              request: request, as: EchoResponse.self)
                            return reply.payload == request.payload
                        }
                    }
                    return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
                }
                #expect(ok == 1000)
                try await client.close()
            }
        }
    }

    @Test("the connection's death fails every pending call promptly")
    func connectionDeath() async throws {
        try await TemporaryDirectory.with { dir in
            let server = TTRPCServer(services: [EchoService.make()])
            let path = dir + "/s.sock"
            try await server.bind(unixDomainSocketPath: path)
            let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
            let calls = (0..<20).map { _ in
                Task {
                    var request = EchoRequest()
                    request.sleepMs = 30_000
                    return try await client.call(service: echoServiceName, method: "Echo", request: request,
                                                 as: EchoResponse.self)
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            let start = ContinuousClock.now
            await server.shutdown(gracePeriod: .zero)  // force-closes the busy connection
            for call in calls {
                let error = await #expect(throws: TTRPCError.self) { _ = try await call.value }
                #expect(error?.code == .unavailable)
            }
            #expect(ContinuousClock.now - start < .seconds(20))  // not the handlers' 30 s
            // New calls fail at once too.
            await #expect(throws: TTRPCError.self) {
                _ = try await client.unary(service: echoServiceName, method: "Echo", payload: Data())
            }
            #expect(server.connectionCount == 0)
        }
    }

    @Test("graceful shutdown drains in-flight calls, then closes")
    func gracefulShutdown() async throws {
        try await TemporaryDirectory.with { dir in
            // A method that reports when it is running, so shutdown starts only once the
            // call is really in flight on the server (a loaded machine may delay the client).
            let (started, startedContinuation) = AsyncStream<Void>.makeStream()
            let hold = TTRPCService(name: "test.Hold", methods: [
                "Hold": .unary { payload, _ in
                    startedContinuation.yield()
                    try await Task.sleep(for: .milliseconds(500))
                    return payload
                },
            ])
            let server = TTRPCServer(services: [hold])
            let path = dir + "/s.sock"
            try await server.bind(unixDomainSocketPath: path)
            let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
            let inFlight = Task {
                try await client.unary(service: "test.Hold", method: "Hold", payload: Data("finished".utf8))
            }
            var iterator = started.makeAsyncIterator()
            _ = await iterator.next()
            await server.shutdown(gracePeriod: .seconds(30))
            #expect(try await inFlight.value == Data("finished".utf8))
            #expect(!FileManager.default.fileExists(atPath: path))
            try await client.closeFuture.get()
            #expect(server.connectionCount == 0)
            // Connecting now fails: the listener is gone.
            await #expect(throws: TTRPCError.self) { _ = try await TTRPCClient.connect(unixDomainSocketPath: path) }
        }
    }

    @Test("a drain in the tick the last call finished still delivers its response before closing")
    func drainRightAfterLastResponse() async throws {
        // Under load, a graceful shutdown's drain can run after the last call finished
        // but before its response was flushed (flushes are coalesced onto a later tick):
        // the drain finds no call left and must not close before that response is out.
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let group = MultiThreadedEventLoopGroup.singleton
        let serverChannel = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fds[0]).get()
        let clientChannel = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fds[1]).get()
        let (started, startedContinuation) = AsyncStream<Void>.makeStream()
        let hold = TTRPCService(name: "test.Hold", methods: [
            "Hold": .unary { payload, _ in
                startedContinuation.yield()
                try await Task.sleep(for: .seconds(60))  // ended below, by finishing the call
                return payload
            },
        ])
        let handler = try await serverChannel.eventLoop.submit {
            let handler = TTRPCServerHandler(services: [hold.name: hold], configuration: TTRPCServer.Configuration())
            try serverChannel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: serverChannel.eventLoop)
        }.get()
        let client = try await TTRPCClient(channel: clientChannel)
        let inFlight = Task {
            try await client.unary(service: "test.Hold", method: "Hold", payload: Data("finished".utf8))
        }
        var iterator = started.makeAsyncIterator()
        _ = await iterator.next()
        // The call ends (its response written, the flush still queued), then the drain
        // runs, all in one event-loop tick.
        try await serverChannel.eventLoop.submit {
            handler.value.finishCall(id: 1, result: .success(Data("finished".utf8)))
            handler.value.drain()
        }.get()
        #expect(try await inFlight.value == Data("finished".utf8))
        try await serverChannel.closeFuture.get()
        try await client.closeFuture.get()
    }

    @Test("oversized request and response: ResourceExhausted, the connection survives")
    func oversize() async throws {
        try await TemporaryDirectory.with { dir in
            try await withEchoServer(in: dir) { _, path in
                let client = try await TTRPCClient.connect(unixDomainSocketPath: path)
                var big = EchoRequest()
                big.payload = Data(count: 5 << 20)
                let error = await #expect(throws: TTRPCError.self) {
                    _ = try await client.call(service: echoServiceName, method: "Echo", request: big, as: EchoResponse.self)
                }
                #expect(error?.code == .resourceExhausted)
                var bigReply = EchoRequest()
                bigReply.responseSize = 5 << 20
                let replyError = await #expect(throws: TTRPCError.self) {
                    _ = try await client.call(service: echoServiceName, method: "Echo", request: bigReply,
                                              as: EchoResponse.self)
                }
                #expect(replyError?.code == .resourceExhausted)
                let ok = try await client.unary(service: echoServiceName, method: "Echo", payload: Data())
                #expect(ok.isEmpty)
                try await client.close()
            }
        }
    }

    @Test("a client runs on any connected channel (socketpair, not a listener)")
    func anyChannel() async throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let group = MultiThreadedEventLoopGroup.singleton
        let serverChannel = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fds[0]).get()
        let clientChannel = try await NIOPipeBootstrap(group: group).takingOwnershipOfDescriptor(inputOutput: fds[1]).get()
        let server = TTRPCServer(services: [EchoService.make()])
        try await server.serve(channel: serverChannel)
        let client = try await TTRPCClient(channel: clientChannel)
        var request = EchoRequest()
        request.payload = Data("over a pipe".utf8)
        let reply = try await client.call(service: echoServiceName, method: "Echo", request: request, as: EchoResponse.self)
        #expect(reply.payload == request.payload)
        try await client.close()
        await server.shutdown(gracePeriod: .seconds(1))
    }
}
