// The guest side of VsockTransport's QEMU test: a static executable started by
// the test initramfs's /init. It finds the virtio-serial port by name, waits for
// the host to connect, and serves the yamux test command protocol (echo, sink,
// source, ...) on every stream the host opens; when the host disconnects it
// waits for the next connection. A stream whose command is `ttrpc` becomes a
// ttrpc server connection (the Echo test service) once the guest answers `ready`.
import EchoService
import NIOCore
import TTRPCCodec
import VsockTransport
import VsockTransportTestPeer

let ttrpcServer = TTRPCServer(services: [EchoService.make()])
let extra: [String: YamuxTestPeer.ExtraCommand] = [
    "ttrpc": { stream in
        try await stream.write(ByteBuffer(string: "ready\n"))
        let channel = try await stream.makeChannel(startReading: false)
        try await ttrpcServer.serve(channel: channel)
        stream.startReadingChannel()
        try await channel.closeFuture.get()
    },
]

let portName = CommandLine.arguments.dropFirst().first ?? "org.qemubox.test"
var connections = 0
while true {
    do {
        let session = try await VirtioSerialPort.connect(named: portName, timeout: .seconds(600))
        connections += 1
        print("guest-echo: connection \(connections) on \(portName)")
        await YamuxTestPeer.serve(session, extra: extra)
        let reason = await session.terminationError().map { "\($0)" } ?? "closed"
        print("guest-echo: connection \(connections) ended: \(reason)")
    } catch {
        print("guest-echo: \(error)")
        try? await Task.sleep(for: .milliseconds(200))
    }
}
