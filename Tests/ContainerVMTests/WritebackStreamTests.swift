import Foundation
import QemuboxKit
import TestSupport
import Testing

/// The writable layer comes back as a stream from the real guest (vminitd's
/// ExportChanges) and is applied by the host's ChangeApplier; here through the
/// rescue path (a fresh VM reads a writable disk left by a dead one). The disk is
/// built by the test (mounted on the host only to fill it, as a guest would).
@Suite(.serialized, .enabled(if: Fixture.available && Prerequisite.isRoot && Prerequisite.tools("mkfs.ext4", "setfattr", "getfattr")))
struct WritebackStreamTests {
    /// A scratch ext4 image whose upper/ holds a new file, a changed file, a whiteout,
    /// an opaque directory, an xattr, a non-root owner, a hard link, a symlink and a sparse file.
    static func scratchImage(in dir: String) throws -> String {
        let image = dir + "/scratch.ext4"
        let mnt = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try Fixture.sh("truncate -s 64M \(image) && mkfs.ext4 -q -F -O ^has_journal \(image) && mount -o loop \(image) \(mnt)")
        defer { _ = try? Fixture.sh("umount \(mnt)") }
        try Fixture.sh("""
            set -e; u=\(mnt)/upper; mkdir -p $u/etc $u/data/opaque $u/newdir
            echo new > $u/etc/new.conf; echo changed > $u/etc/keep.conf
            mknod $u/etc/gone.conf c 0 0
            setfattr -n trusted.overlay.opaque -v y $u/data/opaque
            echo fresh > $u/data/opaque/only
            echo owned > $u/newdir/file; chown 1000:1000 $u/newdir/file; chmod 0640 $u/newdir/file
            setfattr -n user.qemubox -v tagged $u/newdir/file
            ln $u/newdir/file $u/newdir/second; ln -s ../etc/new.conf $u/newdir/link
            truncate -s 16M $u/newdir/sparse; printf end >> $u/newdir/sparse
            """)
        return image
    }

    static func existingTarget(_ dir: String) throws -> String {
        let target = dir + "/target"
        try Fixture.sh("""
            set -e; t=\(target); mkdir -p $t/etc $t/data/opaque
            echo old > $t/etc/keep.conf; echo old > $t/etc/gone.conf; echo hidden > $t/data/opaque/old
            """)
        return target
    }

    static func rescue(_ image: String, _ target: String, _ mode: RootfsWriteback.Mode, in dir: String) async throws
        -> ChangeApplier.Summary
    {
        var policy = WritebackPolicy(maxDataBytes: 64 << 20)
        policy.chown = true
        let configuration = SandboxConfiguration(name: "rescue", assets: try Fixture.assets(), stateDirectory: dir + "/vm")
        return try await Sandbox.rescueWriteBack(scratchImage: image, into: .init(directory: target, mode: mode),
                                                 policy: policy, configuration: configuration)
    }

    @Test func intoAnOverlayUpperdir() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let image = try Self.scratchImage(in: dir)
                let target = try Self.existingTarget(dir)
                let summary = try await Self.rescue(image, target, .overlayUpper, in: dir)
                #expect(summary.entries >= 11 && summary.refusedCount == 0, "\(summary)")
                let check = try Fixture.sh("""
                    t=\(target); cat $t/etc/new.conf $t/etc/keep.conf; stat -c '%F %t:%T' $t/etc/gone.conf
                    getfattr --only-values -n trusted.overlay.opaque $t/data/opaque; echo
                    ls $t/data/opaque; stat -c '%u:%g %a %h' $t/newdir/file
                    getfattr --only-values -n user.qemubox $t/newdir/file; echo
                    readlink $t/newdir/link; stat -c '%s' $t/newdir/sparse; tail -c 3 $t/newdir/sparse; echo
                    du -k $t/newdir/sparse | cut -f1
                    grep -c ' ext4 ' /proc/mounts | grep -q '^' && grep -c "\(dir)" /proc/mounts || true
                    """)
                let lines = check.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                #expect(Array(lines.prefix(10)) == ["new", "changed", "character special file 0:0", "y", "only",
                                                    "1000:1000 640 2", "tagged", "../etc/new.conf", "16777219", "end"],
                        "\(check)")
                #expect((Int(lines[10]) ?? 1 << 30) < 1024, "the sparse file was written out: \(lines[10]) KiB")
                #expect(lines[11] == "0", "a mount of the test's directory is left: \(check)")
            }
        }
    }

    @Test func appliedToAPlainDirectory() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                let image = try Self.scratchImage(in: dir)
                let target = try Self.existingTarget(dir)
                _ = try await Self.rescue(image, target, .apply, in: dir)
                let check = try Fixture.sh("""
                    t=\(target); cat $t/etc/new.conf $t/etc/keep.conf; test -e $t/etc/gone.conf && echo still-there
                    getfattr -n trusted.overlay.opaque $t/data/opaque 2>/dev/null && echo marker-left
                    ls $t/data/opaque; stat -c '%u:%g %a' $t/newdir/file
                    """)
                #expect(check == "new\nchanged\nonly\n1000:1000 640\n")
            }
        }
    }

    @Test func aBrokenDiskFailsCleanly() async throws {
        try await ConcurrencyLimit.vms.run {
            try await TemporaryDirectory.with { dir in
                try Data(repeating: 0, count: 1 << 20).write(to: URL(fileURLWithPath: dir + "/junk.ext4"))
                try FileManager.default.createDirectory(atPath: dir + "/t", withIntermediateDirectories: true)
                await #expect(throws: (any Error).self) {
                    _ = try await Self.rescue(dir + "/junk.ext4", dir + "/t", .apply, in: dir)
                }
                #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/t").isEmpty)
                #expect(!FileManager.default.fileExists(atPath: dir + "/vm"), "the rescue VM's state is left")
            }
        }
    }
}
