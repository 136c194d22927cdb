import Foundation
import TestSupport

/// The host end of a virtio-serial port: QEMU's `-chardev socket,server=on`
/// listens on a unix socket; this connects (retrying until QEMU created it),
/// sends one line and collects what the guest writes until EOF or a deadline.
enum VirtioSerialHost {
    /// Connects to `path`, writes `greeting`, and returns everything read until
    /// the guest's `reply` line arrives, the VM exits (EOF) or `timeout` passes.
    /// Stops retrying the connection once `isRunning` says QEMU is gone.
    static func exchange(path: String, greeting: String, until reply: String, timeout: Double,
                         isRunning: @escaping @Sendable () -> Bool) async throws -> String {
        try await runBlocking {
            let deadline = Date().addingTimeInterval(timeout)
            let fd = try connect(path: path, deadline: deadline, isRunning: isRunning)
            defer { close(fd) }
            let bytes = Array(greeting.utf8)
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count else { throw PeerError("write to \(path) failed: errno \(errno)") }
            var received = Data()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline, !String(decoding: received, as: UTF8.self).contains(reply) {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 100) >= 0 else { break }
                if pfd.revents == 0 { continue }
                let count = read(fd, &buffer, buffer.count)
                if count <= 0 { break }
                received.append(contentsOf: buffer[0..<count])
            }
            return String(decoding: received, as: UTF8.self)
        }
    }

    private static func connect(path: String, deadline: Date,
                                isRunning: @Sendable () -> Bool) throws -> Int32 {
        while true {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw PeerError("socket() failed: errno \(errno)") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            guard path.utf8.count < capacity else {
                close(fd)
                throw PeerError("socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if result == 0 { return fd }
            close(fd)
            if Date() > deadline || !isRunning() {
                throw PeerError("could not connect to \(path) (QEMU running: \(isRunning()))")
            }
            usleep(10_000)
        }
    }
}
