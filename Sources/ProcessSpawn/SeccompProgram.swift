import CProcessSpawn
#if canImport(Glibc)
import Glibc
#endif

/// A compiled seccomp BPF program (`struct sock_filter[]`).
public struct SeccompProgram: Sendable, Hashable {
    /// The program's bytes.
    public let bytes: [UInt8]
    /// Number of BPF instructions.
    public var count: Int { bytes.count / 8 }

    /// No filter.
    public static let empty = SeccompProgram(bytes: [])

    /// The raw program.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { bytes.withUnsafeBytes(body) }

    /// Compiles an allow-list for the native architecture (libseccomp): the named system
    /// calls, anything else kills the process (`SIGSYS`), or with `logOnly` is allowed and
    /// audit-logged by the kernel.
    public static func allowList(_ names: [String], logOnly: Bool = false) throws -> SeccompProgram {
        let pointers = names.map { strdup($0) }
        defer { for p in pointers { free(p) } }
        var out: UnsafeMutableRawPointer?
        var count: Int32 = 0
        var bad: Int32 = -1
        let rc = pointers.map { UnsafePointer($0) }.withUnsafeBufferPointer { buffer in
            qbx_seccomp_compile(buffer.baseAddress, Int32(buffer.count), logOnly ? 1 : 0, &out, &count, &bad)
        }
        defer { free(out) }
        if rc == -EINVAL, bad >= 0, Int(bad) < names.count {
            throw SpawnError(.unknownSystemCall, "seccomp: unknown system call \(names[Int(bad)])")
        }
        guard rc == 0, let out, count > 0 else {
            throw SpawnError(.seccompFailed, "seccomp: compiling the allow-list failed: \(String(cString: strerror(-rc)))")
        }
        return SeccompProgram(bytes: Array(UnsafeRawBufferPointer(start: out, count: Int(count) * 8)))
    }
}
