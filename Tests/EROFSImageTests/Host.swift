import CEROFSSupport
import Foundation
import Glibc

/// Small host helpers for the tests: running tools, mounting images, xattrs.
enum Host {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs a tool and returns its exit status and combined output.
    @discardableResult
    static func run(_ args: [String], allowFailure: Bool = false) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = args
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        if !allowFailure && process.terminationStatus != 0 {
            throw Failure(description: "\(args.joined(separator: " ")) exited \(process.terminationStatus): \(output)")
        }
        return (process.terminationStatus, output)
    }

    /// Loop-mounts `image` read-only at a fresh directory under `scratch`, runs
    /// `body`, and always unmounts and detaches the loop device.
    static func withMounted<T>(_ image: String, scratch: String, _ body: (String) throws -> T) throws -> T {
        let mountPoint = scratch + "/mnt-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        let loop = try run(["losetup", "-f", "--show", "-r", image]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? run(["losetup", "-d", loop], allowFailure: true) }
        try run(["mount", "-t", "erofs", "-o", "ro", loop, mountPoint])
        defer { _ = try? run(["umount", mountPoint], allowFailure: true) }
        return try body(mountPoint)
    }

    static func setXattr(_ path: String, _ name: String, _ value: [UInt8]) throws {
        let rc = value.withUnsafeBytes { lsetxattr(path, name, $0.baseAddress, value.count, 0) }
        guard rc == 0 else { throw Failure(description: "setxattr \(path) \(name): errno \(errno)") }
    }

    static func xattrs(_ path: String) throws -> [String: [UInt8]] {
        let size = llistxattr(path, nil, 0)
        guard size >= 0 else { throw Failure(description: "listxattr \(path): errno \(errno)") }
        if size == 0 { return [:] }
        var list = [CChar](repeating: 0, count: size)
        _ = llistxattr(path, &list, size)
        var result: [String: [UInt8]] = [:]
        for name in list.split(separator: 0).map({ String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }) {
            let vsize = lgetxattr(path, name, nil, 0)
            guard vsize >= 0 else { throw Failure(description: "getxattr \(path) \(name): errno \(errno)") }
            var value = [UInt8](repeating: 0, count: vsize)
            _ = value.withUnsafeMutableBytes { lgetxattr(path, name, $0.baseAddress, vsize) }
            result[name] = value
        }
        return result
    }

    static func lstatOrThrow(_ path: String) throws -> stat {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw Failure(description: "lstat \(path): errno \(errno)") }
        return st
    }

    static func setTimes(_ path: String, sec: Int, nsec: Int) throws {
        var times = [timespec(tv_sec: sec, tv_nsec: nsec), timespec(tv_sec: sec, tv_nsec: nsec)]
        guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw Failure(description: "utimensat \(path): errno \(errno)")
        }
    }

    static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else { throw Failure(description: "create \(path): errno \(errno)") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            guard n > 0 else { throw Failure(description: "write \(path): errno \(errno)") }
            done += n
        }
        _ = fchmod(fd, mode)
    }

    static func pwriteAt(_ path: String, _ bytes: [UInt8], offset: Int) throws {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { throw Failure(description: "open \(path)") }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
    }
}

/// Deterministic pseudo-random bytes (xorshift), so corpora are reproducible.
struct SeededBytes {
    var state: UInt64

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    mutating func random(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i + 8 <= count {
                buf.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < count { buf[i] = UInt8(truncatingIfNeeded: next()); i += 1 }
        }
        return out
    }

    /// Compressible text: words drawn from a small vocabulary.
    mutating func text(_ count: Int) -> [UInt8] {
        let words = ["alpha", "beta", "gamma", "delta", "qemubox", "erofs", "container", "layer", "\n", "lz4", "image"]
        var out: [UInt8] = []
        out.reserveCapacity(count + 16)
        while out.count < count {
            out += Array(words[Int(next() % UInt64(words.count))].utf8)
            out.append(0x20)
        }
        return Array(out[0..<count])
    }
}
