import EROFSImage
import Foundation
import Testing
import TestSupport

/// Untrusted tars: each must fail with a clear error naming the entry, write
/// nothing outside the image, and never crash.
@Suite("Hostile layer tars")
struct HostileTarTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var code: EROFSError.Code
        var mentions: String
        var bytes: @Sendable () -> [UInt8]
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(name: "dot-dot path", code: .unsafePath, mentions: "../escape") {
            var t = TarBuilder(); t.entry("../escape", data: Array("x".utf8)); t.end(); return t.bytes
        },
        Case(name: "dot-dot inside a path", code: .unsafePath, mentions: "a/../../escape") {
            var t = TarBuilder(); t.entry("a/", type: "5"); t.entry("a/../../escape", data: [1]); t.end(); return t.bytes
        },
        Case(name: "absolute path", code: .unsafePath, mentions: "/etc/passwd") {
            var t = TarBuilder(); t.entry("/etc/passwd", data: Array("root".utf8)); t.end(); return t.bytes
        },
        Case(name: "write through a symlink", code: .unsafePath, mentions: "link/passwd") {
            var t = TarBuilder(); t.entry("link", type: "2", link: "/etc"); t.entry("link/passwd", data: [1]); t.end(); return t.bytes
        },
        Case(name: "directory through a relative symlink", code: .unsafePath, mentions: "up/x") {
            var t = TarBuilder(); t.entry("up", type: "2", link: ".."); t.entry("up/x", type: "5"); t.end(); return t.bytes
        },
        Case(name: "hardlink to outside", code: .unsafePath, mentions: "evil") {
            var t = TarBuilder(); t.entry("evil", type: "1", link: "../../etc/shadow"); t.end(); return t.bytes
        },
        Case(name: "hardlink to an absolute path", code: .unsafePath, mentions: "evil") {
            var t = TarBuilder(); t.entry("evil", type: "1", link: "/etc/shadow"); t.end(); return t.bytes
        },
        Case(name: "hardlink to a missing file", code: .unsafePath, mentions: "dangling") {
            var t = TarBuilder(); t.entry("dangling", type: "1", link: "nothing-here"); t.end(); return t.bytes
        },
        Case(name: "hardlink through a symlink", code: .unsafePath, mentions: "sneaky") {
            var t = TarBuilder(); t.entry("etc", type: "2", link: "/etc"); t.entry("sneaky", type: "1", link: "etc/shadow"); t.end(); return t.bytes
        },
        Case(name: "hardlink to a directory", code: .unsafePath, mentions: "dirlink") {
            var t = TarBuilder(); t.entry("d", type: "5"); t.entry("dirlink", type: "1", link: "d"); t.end(); return t.bytes
        },
        Case(name: "duplicate entry", code: .duplicateEntry, mentions: "twice.txt") {
            var t = TarBuilder(); t.entry("twice.txt", data: [1]); t.entry("twice.txt", data: [2]); t.end(); return t.bytes
        },
        Case(name: "absurd size", code: .limitExceeded, mentions: "huge") {
            var t = TarBuilder(); t.pax([("size", "99999999999999999")]); t.entry("huge", size: 0); t.end(); return t.bytes
        },
        Case(name: "size beyond the stream", code: .corruptTar, mentions: "short") {
            var t = TarBuilder(); t.entry("short", data: [1, 2, 3], size: 100_000); return t.bytes
        },
        Case(name: "truncated header", code: .corruptTar, mentions: "truncated") {
            var t = TarBuilder(); t.entry("ok", data: [1]); return Array(t.bytes.prefix(700))
        },
        Case(name: "no end-of-archive marker", code: .corruptTar, mentions: "end-of-archive") {
            var t = TarBuilder(); t.entry("ok", data: [1]); return t.bytes
        },
        Case(name: "bad checksum", code: .corruptTar, mentions: "checksum") {
            var t = TarBuilder(); t.entry("bad", data: [1], corruptChecksum: true); t.end(); return t.bytes
        },
        Case(name: "not a tar at all", code: .corruptTar, mentions: "checksum") {
            Array(repeating: 0x41, count: 4096)
        },
        Case(name: "bad PAX record", code: .corruptTar, mentions: "PAX") {
            var t = TarBuilder(); t.entry("PaxHeader", type: "x", data: Array("999 path=x\n".utf8)); t.entry("f"); t.end(); return t.bytes
        },
        Case(name: "name longer than 255 bytes", code: .unsupported, mentions: "longer than 255") {
            var t = TarBuilder(); t.pax([("path", String(repeating: "a", count: 300))]); t.entry("x"); t.end(); return t.bytes
        },
        Case(name: "unknown entry type", code: .unsupported, mentions: "weird") {
            var t = TarBuilder(); t.entry("weird", type: "Z"); t.end(); return t.bytes
        },
        Case(name: "sparse map beyond the file", code: .corruptTar, mentions: "sparse") {
            var t = TarBuilder()
            t.pax([("GNU.sparse.major", "0"), ("GNU.sparse.minor", "1"), ("GNU.sparse.name", "sp"),
                   ("GNU.sparse.realsize", "10"), ("GNU.sparse.map", "5,100")])
            t.entry("GNUSparseFile.0/sp", data: [UInt8](repeating: 1, count: 100)); t.end(); return t.bytes
        },
    ]

    @Test("hostile tar is rejected with a clear error", arguments: cases)
    func rejected(_ c: Case) async throws {
        try await TemporaryDirectory.with(prefix: "erofs-hostile") { dir in
            let tar = dir + "/in/layer.tar"
            try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
            try Data(c.bytes()).write(to: URL(fileURLWithPath: tar))
            for mode in [EROFSWhiteoutMode.overlay, .apply] {
                let writer = try EROFSImageWriter(path: dir + "/out/image.erofs")
                do {
                    try writer.addLayer(tarPath: tar, whiteouts: mode)
                    try writer.finish()
                    Issue.record("\(c.name): accepted")
                } catch let error as EROFSError {
                    #expect(error.code == c.code, "\(c.name): \(error)")
                    #expect(error.description.contains(c.mentions), "\(c.name): \(error)")
                }
                // Nothing was written anywhere but the image.
                #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/out") == ["image.erofs"])
                #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["in", "out"])
                #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/in") == ["layer.tar"])
            }
        }
    }

    @Test("corrupt and truncated gzip streams are rejected", .enabled(if: Prerequisite.tools("gzip")))
    func corruptGzip() async throws {
        try await TemporaryDirectory.with(prefix: "erofs-gz") { dir in
            var t = TarBuilder()
            for i in 0..<50 { t.entry("file-\(i)", data: Array(String(repeating: "content \(i) ", count: 500).utf8)) }
            t.end()
            try Data(t.bytes).write(to: URL(fileURLWithPath: dir + "/l.tar"))
            try Host.run(["gzip", dir + "/l.tar"])
            let good = try Data(contentsOf: URL(fileURLWithPath: dir + "/l.tar.gz"))
            var flipped = good
            flipped[good.count / 2] ^= 0xFF
            for (name, bytes) in [("truncated", good.prefix(good.count / 2)), ("flipped", flipped)] {
                let path = dir + "/\(name).tar.gz"
                try Data(bytes).write(to: URL(fileURLWithPath: path))
                let writer = try EROFSImageWriter(path: dir + "/\(name).erofs")
                #expect(throws: EROFSError.self, "\(name)") { try writer.addLayer(tarPath: path, whiteouts: .overlay) }
            }
            // The intact stream works.
            let writer = try EROFSImageWriter(path: dir + "/good.erofs")
            try writer.addLayer(tarPath: dir + "/l.tar.gz", whiteouts: .overlay)
            #expect(try writer.finish().inodes == 51)
            let reader = try EROFSReader(path: dir + "/good.erofs")
            let f = try reader.lookup("file-7")
            #expect(try reader.readRange(f, at: 0, count: 100) == Array(String(repeating: "content 7 ", count: 10).utf8))
        }
    }

    @Test("the reader rejects corrupted images without crashing")
    func corruptImages() async throws {
        try await TemporaryDirectory.with(prefix: "erofs-fuzz") { dir in
            let source = dir + "/src"
            try Corpus.build(at: source, options: .init(bigDirectoryEntries: 300, sparseSize: 1 << 20, depth: 4, socketsAndACLs: false))
            var options = EROFSWriterOptions()
            options.compression = .lz4
            let writer = try EROFSImageWriter(path: dir + "/good.erofs", options: options)
            try writer.addDirectory(source)
            try writer.finish()
            let good = try Data(contentsOf: URL(fileURLWithPath: dir + "/good.erofs"))
            var rng = SeededBytes(state: 42)
            var rejected = 0
            for round in 0..<200 {
                var bad = good
                for _ in 0..<8 {
                    let at = Int(rng.next() % UInt64(bad.count))
                    bad[at] = UInt8(truncatingIfNeeded: rng.next())
                }
                if round % 10 == 0 { bad = bad.prefix(Int(rng.next() % UInt64(bad.count))) }
                let path = dir + "/bad.erofs"
                try bad.write(to: URL(fileURLWithPath: path))
                do {
                    let reader = try EROFSReader(path: path)
                    try reader.walk { _, inode in
                        _ = try reader.xattrs(inode)
                        if inode.isRegular { _ = try reader.readRange(inode, at: 0, count: 1 << 16) }
                    }
                } catch is EROFSError {
                    rejected += 1
                }
            }
            #expect(rejected > 0)
        }
    }
}
