// The guest side of VsockTransport's QEMU test: a static executable started by
// the test initramfs's /init. It finds the virtio-serial port by name, waits for
// the host to connect, and serves the yamux test command protocol (echo, sink,
// source, ...) on every stream the host opens; when the host disconnects it
// waits for the next connection.
import VsockTransport
import VsockTransportTestPeer

let portName = CommandLine.arguments.dropFirst().first ?? "org.qemubox.test"
var connections = 0
while true {
    do {
        let session = try await VirtioSerialPort.connect(named: portName, timeout: .seconds(600))
        connections += 1
        print("guest-echo: connection \(connections) on \(portName)")
        await YamuxTestPeer.serve(session)
        let reason = await session.terminationError().map { "\($0)" } ?? "closed"
        print("guest-echo: connection \(connections) ended: \(reason)")
    } catch {
        print("guest-echo: \(error)")
        try? await Task.sleep(for: .milliseconds(200))
    }
}
