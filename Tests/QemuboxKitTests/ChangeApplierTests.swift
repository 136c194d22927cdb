import CQemuboxSupport
import Foundation
import QemuboxAPI
import Testing
import TestSupport
@testable import QemuboxKit

/// The host side of the writeback: a hostile guest's records applied to a target
/// directory. Nothing may land outside it; the policy refuses what runc would not allow.
@Suite(.enabled(if: Prerequisite.isRoot))
struct ChangeApplierTests {
    typealias Record = Qemubox_Guest_V1_ChangeRecord

    static func record(_ kind: Record.Kind, _ path: String, mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
                       link: String = "", size: UInt64 = 0, data: Data = Data(), offset: UInt64 = 0) -> Record {
        var r = Record()
        r.kind = kind
        r.path = path
        r.mode = mode
        r.uid = uid
        r.gid = gid
        r.link = link
        r.size = size
        r.data = data
        r.offset = offset
        r.mtimeSeconds = 1_700_000_000
        return r
    }

    /// A target inside `dir`, and a sentinel directory beside it that must stay untouched.
    static func setUp(_ dir: String) throws -> (target: String, outside: String) {
        let target = dir + "/snapshot/fs", outside = dir + "/outside"
        for path in [target, outside] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        try "host".write(toFile: outside + "/secret", atomically: true, encoding: .utf8)
        return (target, outside)
    }

    static func untouched(_ outside: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: outside)) ?? []
        return names == ["secret"] && (try? String(contentsOfFile: outside + "/secret", encoding: .utf8)) == "host"
    }

    static func apply(_ records: [Record], to target: String, mode: RootfsWriteback.Mode = .overlayUpper,
                      policy: WritebackPolicy = WritebackPolicy(maxDataBytes: 64 << 20)) throws -> ChangeApplier.Summary {
        let applier = try ChangeApplier(target: .init(directory: target, mode: mode), policy: policy)
        for r in records { try applier.apply(r) }
        return try applier.finish()
    }

    @Test("an honest layer: files, data with holes, directories, symlinks, hard links, whiteouts, opaque dirs")
    func honestLayer() async throws {
        try await TemporaryDirectory.with { dir in
            let (target, outside) = try Self.setUp(dir)
            try FileManager.default.createDirectory(atPath: target + "/old/inner", withIntermediateDirectories: true)
            try "gone".write(toFile: target + "/old/inner/x", atomically: true, encoding: .utf8)
            var opaque = Self.record(.directory, "old", mode: 0o755)
            opaque.opaque = true
            let records = [
                Self.record(.directory, "etc", mode: 0o755),
                Self.record(.file, "etc/app.conf", mode: 0o640, uid: 1000, gid: 1000, size: 5),
                Self.record(.data, "etc/app.conf", data: Data("hello".utf8)),
                Self.record(.file, "etc/sparse", size: 8 << 20),
                Self.record(.data, "etc/sparse", data: Data("tail".utf8), offset: (8 << 20) - 4),
                Self.record(.hardlink, "etc/app2.conf", link: "etc/app.conf"),
                Self.record(.symlink, "etc/link", link: "/etc/passwd"),
                Self.record(.whiteout, "etc/removed"),
                opaque,
                Self.record(.file, "old/fresh", size: 0),
            ]
            let summary = try Self.apply(records, to: target, policy: WritebackPolicy(spec: .init(), layerBytes: 64 << 20).with {
                $0.chown = true
            })
            #expect(summary.refusedCount == 0, "\(summary.refused)")
            #expect(try String(contentsOfFile: target + "/etc/app.conf", encoding: .utf8) == "hello")
            let attributes = try FileManager.default.attributesOfItem(atPath: target + "/etc/app.conf")
            #expect((attributes[.posixPermissions] as? Int) == 0o640)
            #expect((attributes[.ownerAccountID] as? Int) == 1000)
            var s = stat()
            #expect(stat(target + "/etc/sparse", &s) == 0 && s.st_size == 8 << 20 && s.st_blocks < 64)
            #expect(stat(target + "/etc/app2.conf", &s) == 0 && s.st_nlink == 2)
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/etc/link") == "/etc/passwd")
            #expect(lstat(target + "/etc/removed", &s) == 0 && s.st_mode & S_IFMT == S_IFCHR && s.st_rdev == 0)
            #expect(try FileManager.default.contentsOfDirectory(atPath: target + "/old") == ["fresh"])
            var value = [UInt8](repeating: 0, count: 4)
            #expect(getxattr(target + "/old", "trusted.overlay.opaque", &value, 4) == 1 && value[0] == UInt8(ascii: "y"))
            #expect(Self.untouched(outside))
        }
    }

    @Test("apply mode: whiteouts delete, opaque directories are emptied, no overlay marker")
    func applyMode() async throws {
        try await TemporaryDirectory.with { dir in
            let (target, _) = try Self.setUp(dir)
            try FileManager.default.createDirectory(atPath: target + "/d", withIntermediateDirectories: true)
            try "x".write(toFile: target + "/d/old", atomically: true, encoding: .utf8)
            try "x".write(toFile: target + "/gone", atomically: true, encoding: .utf8)
            var opaque = Self.record(.directory, "d", mode: 0o755)
            opaque.opaque = true
            _ = try Self.apply([Self.record(.whiteout, "gone"), opaque], to: target, mode: .apply)
            #expect(!FileManager.default.fileExists(atPath: target + "/gone"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: target + "/d").isEmpty)
            var value = [UInt8](repeating: 0, count: 4)
            #expect(getxattr(target + "/d", "trusted.overlay.opaque", &value, 4) < 0)
        }
    }

    @Test("names that leave the target are refused, and nothing is written outside", arguments: [
        "../outside/secret", "/etc/evil", "a/../../outside/x", "./x", "a//b", "", "x\u{0}y",
    ])
    func escapingNames(_ path: String) async throws {
        try await TemporaryDirectory.with { dir in
            let (target, outside) = try Self.setUp(dir)
            #expect(throws: QemuboxError.self) {
                _ = try Self.apply([Self.record(.file, path, size: 4), Self.record(.data, path, data: Data("evil".utf8))],
                                   to: target)
            }
            #expect(Self.untouched(outside))
        }
    }

    @Test("a symlink then a write through it is refused (no symlink is followed)")
    func symlinkThenWrite() async throws {
        try await TemporaryDirectory.with { dir in
            let (target, outside) = try Self.setUp(dir)
            #expect(throws: QemuboxError.self) {
                _ = try Self.apply([Self.record(.symlink, "esc", link: outside),
                                    Self.record(.file, "esc/secret", size: 4),
                                    Self.record(.data, "esc/secret", data: Data("evil".utf8))], to: target)
            }
            #expect(Self.untouched(outside))
            // An absolute symlink left behind is only data: a later record never resolves through it.
            #expect(throws: QemuboxError.self) {
                _ = try Self.apply([Self.record(.directory, "esc/sub")], to: target)
            }
            #expect(Self.untouched(outside))
        }
    }

    @Test("hard links may only name files of the same layer")
    func hardlinkToHostFile() async throws {
        try await TemporaryDirectory.with { dir in
            let (target, outside) = try Self.setUp(dir)
            try "in-snapshot".write(toFile: target + "/existing", atomically: true, encoding: .utf8)
            for link in ["existing", "../outside/secret", outside + "/secret"] {
                #expect(throws: QemuboxError.self) {
                    _ = try Self.apply([Self.record(.hardlink, "l", link: link)], to: target)
                }
            }
            var s = stat()
            #expect(stat(outside + "/secret", &s) == 0 && s.st_nlink == 1)
            #expect(Self.untouched(outside))
        }
    }

    @Test("the policy: devices need CAP_MKNOD, set-id bits and other owners need their capabilities")
    func policyRefusals() async throws {
        try await TemporaryDirectory.with { dir in
            let (target, _) = try Self.setUp(dir)
            // A container running as 1000 without capabilities.
            var policy = WritebackPolicy(maxDataBytes: 1 << 20)
            policy.uid = 1000
            policy.gid = 1000
            var capability = Self.record(.file, "ping", mode: 0o755, uid: 1000, gid: 1000)
            var attribute = Qemubox_Guest_V1_ExtendedAttribute()
            attribute.name = "security.capability"
            // vfs_cap_data revision 2: CAP_NET_RAW permitted.
            attribute.value = Data([0, 0, 0, 2, 0x00, 0x20, 0, 0] + [UInt8](repeating: 0, count: 12))
            capability.xattrs = [attribute]
            var trusted = Self.record(.file, "t", uid: 1000, gid: 1000)
            attribute.name = "trusted.evil"
            trusted.xattrs = [attribute]
            var dev = Self.record(.charDevice, "mem")
            dev.rdevMajor = 1
            dev.rdevMinor = 1
            let summary = try Self.apply([
                dev,
                Self.record(.file, "suid", mode: 0o4755, uid: 0, gid: 0),
                capability, trusted,
                Self.record(.fifo, "pipe", mode: 0o600, uid: 1000, gid: 1000),
            ], to: target, policy: policy)
            var s = stat()
            #expect(lstat(target + "/mem", &s) != 0, "a device node was created")
            #expect(stat(target + "/suid", &s) == 0 && s.st_uid == 1000 && s.st_mode & 0o7777 == 0o755)
            #expect(getxattr(target + "/ping", "security.capability", nil as UnsafeMutableRawPointer?, 0) < 0)
            #expect(getxattr(target + "/t", "trusted.evil", nil as UnsafeMutableRawPointer?, 0) < 0)
            #expect(lstat(target + "/pipe", &s) == 0 && s.st_mode & S_IFMT == S_IFIFO)
            #expect(summary.refusedCount == 5, "\(summary.refused)")
            // The same layer from a root container with the default capabilities is applied as it is.
            var root = WritebackPolicy(maxDataBytes: 1 << 20)
            root.devices = true
            root.chown = true
            root.setID = true
            root.fileCapabilities = true
            let all = try Self.apply([dev, Self.record(.file, "suid2", mode: 0o4755), capability], to: target, policy: root)
            #expect(all.refusedCount == 0, "\(all.refused)")
            #expect(lstat(target + "/mem", &s) == 0 && s.st_mode & S_IFMT == S_IFCHR)
            #expect(stat(target + "/suid2", &s) == 0 && s.st_mode & 0o7777 == 0o4755)
        }
    }

    @Test("sizes and counts are bounded by the layer")
    func bounds() async throws {
        try await TemporaryDirectory.with { dir in
            let (target, _) = try Self.setUp(dir)
            let policy = WritebackPolicy(maxDataBytes: 1 << 20)
            // A 2 GiB sparse file is fine; 2 MiB of data in a 1 MiB layer is not.
            let chunk = Data(count: 1 << 20)
            #expect(throws: QemuboxError.self) {
                _ = try Self.apply([Self.record(.file, "big", size: 2 << 30), Self.record(.data, "big", data: chunk),
                                    Self.record(.data, "big", data: chunk, offset: 1 << 20)], to: target, policy: policy)
            }
            // Data beyond the declared size, and data for a file that is not the current one.
            #expect(throws: QemuboxError.self) {
                _ = try Self.apply([Self.record(.file, "f", size: 2), Self.record(.data, "f", data: Data("abc".utf8))],
                                   to: target, policy: policy)
            }
            #expect(throws: QemuboxError.self) {
                _ = try Self.apply([Self.record(.file, "a", size: 1), Self.record(.data, "b", data: Data("x".utf8))],
                                   to: target, policy: policy)
            }
            var few = policy
            few.maxEntries = 10
            #expect(throws: QemuboxError.self) {
                _ = try Self.apply((0..<11).map { Self.record(.file, "n\($0)") }, to: target, policy: few)
            }
        }
    }

    @Test("100,000 empty files apply")
    func manyFiles() async throws {
        try await TemporaryDirectory.with { dir in
            let (target, _) = try Self.setUp(dir)
            let applier = try ChangeApplier(target: .init(directory: target, mode: .overlayUpper),
                                            policy: WritebackPolicy(maxDataBytes: 1 << 20))
            try applier.apply(Self.record(.directory, "many", mode: 0o755))
            for n in 0..<100_000 { try applier.apply(Self.record(.file, "many/f\(n)")) }
            let summary = try applier.finish()
            #expect(summary.entries == 100_001)
            #expect(try FileManager.default.contentsOfDirectory(atPath: target + "/many").count == 100_000)
        }
    }
}

extension WritebackPolicy {
    func with(_ change: (inout WritebackPolicy) -> Void) -> WritebackPolicy {
        var copy = self
        change(&copy)
        return copy
    }
}
