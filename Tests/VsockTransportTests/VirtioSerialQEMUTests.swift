import Foundation
import NIOCore
import TestSupport
import Testing
import VsockTransport
import VsockTransportTestPeer
import VsockTransportTestVM

/// Whether the QEMU test can run; under CI a missing piece fails loudly instead.
private func vmPrerequisites() -> Bool {
    let missing = EchoGuestVM.missingPrerequisites()
    if missing.isEmpty || Prerequisite.isCI { return true }
    FileHandle.standardError.write(Data("SKIP: missing \(missing.joined(separator: ", ")); run scripts/install-deps.sh\n".utf8))
    return false
}

/// yamux over a real virtio-serial port: QEMU (TCG, microvm), the Debian cloud
/// kernel, and the static Swift guest program serving the test protocol.
@Suite("yamux over virtio-serial in QEMU", .serialized)
struct VirtioSerialQEMUTests {
    @Test("many echo streams with checksums, a large transfer, and a reconnect", .enabled(if: vmPrerequisites()))
    func echoStreamsInGuest() async throws {
        #expect(EchoGuestVM.missingPrerequisites() == [])
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                // Building the initramfs and starting QEMU block: keep them off the pool.
                let vm = try await offPool { try EchoGuestVM(directory: dir) }
                defer { vm.stop() }
                let session = try await vm.connect()
                // 64 concurrent echo streams, random sizes up to 64 KiB, byte-exact.
                let intact = try await YamuxTestPeer.echoMany(session, count: 64, maxSize: 64 * 1024)
                #expect(intact == 64)
                // 2 MiB from the guest, checked against the pattern's checksum.
                let source = try await session.openStream()
                try await source.write(ByteBuffer(string: "source \(2 << 20)\n"))
                var hash = FNV1a64()
                var count = 0
                for try await chunk in source.inbound {
                    hash.update(chunk)
                    count += chunk.readableBytes
                }
                var expected = FNV1a64()
                expected.update(YamuxTestPeer.pattern(count: 2 << 20))
                #expect(count == 2 << 20)
                #expect(hash == expected)
                // 1 MiB to the guest, checksummed there.
                let sink = try await session.openStream()
                try await sink.write(ByteBuffer(string: "sink \(1 << 20) 0\n"))
                let sent = try await YamuxTestPeer.writePattern(sink, count: 1 << 20)
                var reader = LineReader(stream: sink)
                #expect(try await reader.readLine() == "\(sent.hex) \(1 << 20)")

                // The host disconnects; the guest waits for the next connection.
                await session.close()
                let again = try await vm.connect(timeout: .seconds(60))
                #expect(try await YamuxTestPeer.echoMany(again, count: 8, maxSize: 16 * 1024) == 8)
                await again.close()
                #expect(vm.console().contains("guest-echo: connection 2"), "console:\n\(vm.console())")
            }
        }
    }

    /// Regression: a host that closes and reconnects at once makes the port report
    /// a hangup that is already over when the guest reads (`POLLHUP`, then
    /// `EAGAIN`). NIO used to trap on that in the guest (`SIGILL`, "got .readEOF
    /// and read returned not reading any bytes, nor EOF"); the guest must instead
    /// end the session and serve the new connection. The race is timing-bound, so
    /// the test reconnects several times.
    @Test("the host reconnects at once, again and again; the guest serves every new connection",
          .enabled(if: vmPrerequisites()))
    func immediateReconnects() async throws {
        #expect(EchoGuestVM.missingPrerequisites() == [])
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let vm = try await offPool { try EchoGuestVM(directory: dir) }
                defer { vm.stop() }
                var session = try await vm.connect()
                let rounds = 6
                for round in 1...rounds {
                    let data = YamuxTestPeer.randomBytes(count: 4096, seed: UInt64(round))
                    #expect(try await YamuxTestPeer.echoRoundTrip(session, data: data), "round \(round)")
                    await session.close()
                    session = try await vm.connect(timeout: .seconds(60))
                }
                #expect(try await YamuxTestPeer.echoMany(session, count: 4, maxSize: 4096) == 4)
                await session.close()
                let console = vm.console()
                #expect(!console.contains("Illegal instruction"), "console:\n\(console)")
                #expect(console.contains("guest-echo: connection \(rounds + 1) "), "console:\n\(console)")
            }
        }
    }
}
