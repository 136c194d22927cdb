import Foundation
import Testing
@testable import QMPClient

/// The protocol engine against a fake peer that sends exactly what each test wants.
@Suite struct QMPClientProtocolTests {
    @Test func handshakeReadsGreetingAndNegotiates() async throws {
        let (client, _) = try await connectedPair()
        #expect(client.greeting.versionString == "7.2.22")
        #expect(client.greeting.package == "fake")
        #expect(client.greeting.capabilities == ["oob"])
        await client.close()
    }

    @Test func typedResultAndCommandIDs() async throws {
        let (client, peer) = try await connectedPair()
        let status = Task { try await client.queryStatus() }
        let cmd = try await peer.readCommand()
        #expect(cmd.name == "query-status")
        #expect(cmd.id.intValue != nil)
        peer.reply(id: cmd.id, #"{"status": "paused", "singlestep": false, "running": false}"#)
        let s = try await status.value
        #expect(s.status == "paused")
        #expect(s.running == false)
        await client.close()
    }

    @Test func concurrentCommandsAnsweredOutOfOrder() async throws {
        let (client, peer) = try await connectedPair()
        let n = 16
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for i in 0..<n {
                group.addTask {
                    let v = try await client.execute("echo", arguments: ["n": .int(Int64(i))])
                    return (i, v.stringValue ?? "")
                }
            }
            var cmds: [(JSONValue, JSONValue?)] = []
            for _ in 0..<n {
                let c = try await peer.readCommand()
                cmds.append((c.id, c.arguments))
            }
            #expect(Set(cmds.map { $0.0 }).count == n, "ids are unique")
            for (id, args) in cmds.reversed() {
                peer.reply(id: id, "\"echo-\(args?["n"]?.intValue ?? -1)\"")
            }
            for try await (i, answer) in group {
                #expect(answer == "echo-\(i)")
            }
        }
        await client.close()
    }

    @Test func qmpErrorBecomesTypedError() async throws {
        let (client, peer) = try await connectedPair()
        let result = Task { try await client.deviceDel(id: "nope") }
        let cmd = try await peer.readCommand()
        #expect(cmd.name == "device_del")
        #expect(cmd.arguments?["id"]?.stringValue == "nope")
        peer.replyError(id: cmd.id, cls: "DeviceNotFound", desc: "Device 'nope' not found")
        let error = await #expect(throws: QMPError.self) { try await result.value }
        #expect(error?.code == .commandFailed)
        #expect(error?.qmpClass == "DeviceNotFound")
        #expect(error?.message == "Device 'nope' not found")
        #expect(error?.command == "device_del")
        // The connection survives a command error.
        let again = Task { try await client.execute("query-version") }
        let c2 = try await peer.readCommand()
        peer.reply(id: c2.id, #"{"qemu": {"major": 7}}"#)
        #expect(try await again.value["qemu"]?["major"]?.intValue == 7)
        await client.close()
    }

    @Test func eventsAreTyped() async throws {
        let (client, peer) = try await connectedPair()
        let ts = #""timestamp": {"seconds": 1700000000, "microseconds": 5}"#
        peer.sendLine(#"{"event": "STOP", \#(ts)}"#)
        peer.sendLine(#"{"event": "GUEST_PANICKED", "data": {"action": "pause"}, \#(ts)}"#)
        peer.sendLine(#"{"event": "DEVICE_DELETED", "data": {"device": "dimm1", "path": "/machine/peripheral/dimm1"}, \#(ts)}"#)
        peer.sendLine(#"{"event": "BLOCK_IO_ERROR", "data": {"device": "d0", "node-name": "n0", "operation": "write", "action": "report", "nospace": true, "reason": "No space left on device"}, \#(ts)}"#)
        peer.sendLine(#"{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-panic"}, \#(ts)}"#)
        peer.sendLine(#"{"event": "X_NEW_EVENT", "data": {"k": 1}, \#(ts)}"#)
        var it = client.events.makeAsyncIterator()
        let stop = await it.next()
        #expect(stop?.kind == .stop)
        #expect(stop?.seconds == 1_700_000_000)
        #expect(await it.next()?.kind == .guestPanicked(action: "pause"))
        #expect(await it.next()?.kind == .deviceDeleted(device: "dimm1", path: "/machine/peripheral/dimm1"))
        #expect(await it.next()?.kind == .blockIOError(device: "d0", nodeName: "n0", operation: "write",
                                                       action: "report", noSpace: true, reason: "No space left on device"))
        #expect(await it.next()?.kind == .shutdown(guest: true, reason: .guestPanic))
        let other = await it.next()
        #expect(other?.kind == .other)
        #expect(other?.data["k"]?.intValue == 1)
        await client.close()
        #expect(await it.next() == nil, "events finish when the connection closes")
    }

    @Test func closedSocketFailsPendingCommandsAtOnce() async throws {
        let (client, peer) = try await connectedPair(.init(commandTimeout: .seconds(60)))
        let started = ContinuousClock.now
        let a = Task { try await client.execute("query-status") }
        let b = Task { try await client.execute("query-cpus-fast") }
        _ = try await peer.readCommand()
        _ = try await peer.readCommand()
        peer.shutdownWrite()
        let ea = await #expect(throws: QMPError.self) { try await a.value }
        let eb = await #expect(throws: QMPError.self) { try await b.value }
        #expect(ea?.code == .connectionClosed)
        #expect(eb?.code == .connectionClosed)
        #expect(ContinuousClock.now - started < .seconds(30))  // well before the 60 s command timeout
        // Later commands fail immediately too.
        let later = await #expect(throws: QMPError.self) { try await client.execute("query-status") }
        #expect(later?.code == .connectionClosed)
        #expect(client.isOpen == false)
    }

    @Test func commandTimeout() async throws {
        let (client, peer) = try await connectedPair()
        let error = await #expect(throws: QMPError.self) {
            try await client.execute("query-status", timeout: .milliseconds(200))
        }
        #expect(error?.code == .timeout)
        // A late answer to the timed-out command is ignored; the connection still works.
        let cmd = try await peer.readCommand()
        peer.reply(id: cmd.id, #"{"status": "running", "running": true}"#)
        let s = Task { try await client.queryStatus() }
        let c2 = try await peer.readCommand()
        peer.reply(id: c2.id, #"{"status": "running", "running": true}"#)
        #expect(try await s.value.running)
        await client.close()
    }

    @Test func argumentsMustBeAnObject() async throws {
        let (client, _) = try await connectedPair()
        let error = await #expect(throws: QMPError.self) { try await client.execute("x", arguments: [1, 2]) }
        #expect(error?.code == .invalidArgument)
        await client.close()
    }

    @Test func unexpectedResultShapeIsAnError() async throws {
        let (client, peer) = try await connectedPair()
        let s = Task { try await client.queryStatus() }
        let cmd = try await peer.readCommand()
        peer.reply(id: cmd.id, #"{"status": 42}"#)
        let error = await #expect(throws: QMPError.self) { try await s.value }
        #expect(error?.code == .unexpectedResult)
        #expect(client.isOpen, "a bad result shape is not a protocol failure")
        await client.close()
    }
}

