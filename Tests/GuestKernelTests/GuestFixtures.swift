import Foundation
import TestSupport

/// Builds what the boot test feeds the guest: a tiny initramfs (busybox-static
/// plus a generated `/init`) and an lz4-compressed EROFS image.
enum GuestFixtures {
    /// Runs `tool arguments` (in `directory`), failing with its stderr.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String], in directory: String? = nil) throws -> String {
        guard let path = Prerequisite.which(tool) else { throw PeerError("\(tool) not found") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let errors = Pipe()
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let errorData = LockedBox<Data>()
        let drain = Thread { errorData.set(errors.fileHandleForReading.readDataToEndOfFile()) }
        drain.start()
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PeerError("\(tool) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): "
                + String(decoding: errorData.wait(), as: UTF8.self))
        }
        return String(decoding: outData, as: UTF8.self)
    }

    /// The statically linked busybox (Debian's busybox-static), or an error
    /// explaining why the dynamic one cannot run in a bare initramfs.
    static func staticBusybox() throws -> String {
        guard let busybox = Prerequisite.which("busybox") else {
            throw PeerError("busybox not found (apt-get install busybox-static)")
        }
        let binary = try Data(contentsOf: URL(fileURLWithPath: busybox))
        if try hasInterpreter(binary) {
            throw PeerError("\(busybox) is dynamically linked; install busybox-static")
        }
        return busybox
    }

    /// Whether an ELF64 little-endian executable has a PT_INTERP program header
    /// (that is, needs a dynamic loader).
    static func hasInterpreter(_ elf: Data) throws -> Bool {
        let bytes = [UInt8](elf)
        func integer(_ offset: Int, _ size: Int) -> Int {
            (0..<size).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
        }
        guard bytes.count >= 64, bytes[0..<4] == [0x7F, 0x45, 0x4C, 0x46], bytes[4] == 2, bytes[5] == 1 else {
            throw PeerError("not an ELF64 little-endian file")
        }
        let phoff = integer(0x20, 8), phentsize = integer(0x36, 2), phnum = integer(0x38, 2)
        guard phentsize >= 4, phoff + phnum * phentsize <= bytes.count else {
            throw PeerError("truncated ELF program headers")
        }
        return (0..<phnum).contains { integer(phoff + $0 * phentsize, 4) == 3 }
    }

    /// Writes `initramfs.cpio` (newc, uncompressed) into `directory` with busybox
    /// as /bin/busybox and `script` as /init, and returns its path.
    static func initramfs(in directory: String, script: String) throws -> String {
        let root = directory + "/initramfs"
        let fm = FileManager.default
        for dir in ["bin", "dev", "proc", "sys", "tmp", "mnt"] {
            try fm.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: try staticBusybox(), toPath: root + "/bin/busybox")
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root + "/bin/busybox")
        try fm.createSymbolicLink(atPath: root + "/bin/sh", withDestinationPath: "busybox")
        try Data(script.utf8).write(to: URL(fileURLWithPath: root + "/init"))
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: root + "/init")

        let archive = directory + "/initramfs.cpio"
        try run("sh", ["-c", "find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0 > \"$1\"", "sh", archive],
                in: root)
        return archive
    }

    /// Content of the compressible file in the EROFS image (64 KiB of text).
    static let bigFile: Data = {
        var text = ""
        var index = 0
        while text.utf8.count < 65_536 {
            text += "line \(index) of a file that lz4 compresses well\n"
            index += 1
        }
        return Data(text.utf8)
    }()

    /// Builds `lower.erofs` (lz4) holding hello.txt, big.txt and a nested file.
    static func erofsImage(in directory: String) throws -> String {
        let tree = directory + "/erofs-tree"
        let fm = FileManager.default
        try fm.createDirectory(atPath: tree + "/sub/dir", withIntermediateDirectories: true)
        try Data("hello from erofs\n".utf8).write(to: URL(fileURLWithPath: tree + "/hello.txt"))
        try bigFile.write(to: URL(fileURLWithPath: tree + "/big.txt"))
        try Data("nested\n".utf8).write(to: URL(fileURLWithPath: tree + "/sub/dir/file"))
        let image = directory + "/lower.erofs"
        try run("mkfs.erofs", ["-zlz4", image, tree])
        return image
    }
}

/// A value set once by one thread and awaited by another.
final class LockedBox<Value: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Value?

    func set(_ newValue: Value) {
        condition.lock()
        value = newValue
        condition.signal()
        condition.unlock()
    }

    func wait() -> Value {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let value { return value }
            condition.wait()
        }
    }
}
