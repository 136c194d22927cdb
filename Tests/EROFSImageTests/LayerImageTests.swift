import CEROFSSupport
import EROFSImage
import Foundation
import Glibc
import Testing
import TestSupport

let canTar = Prerequisite.tools("tar", "gzip")

@Suite("EROFS images from OCI layer tars", .serialized)
struct LayerImageTests {
    /// Builds a layer directory with whiteouts and an "expected" twin in which the
    /// whiteouts are in overlay form, as the image should show them.
    static func makeLayer(_ dir: String) throws -> (layer: String, expected: String) {
        let layer = dir + "/layer"
        try Corpus.build(at: layer, options: .init(bigDirectoryEntries: 3000, sparseSize: 64 << 20, depth: 12, socketsAndACLs: false))
        try Host.writeFile(layer + "/.wh.deleted-file", [])
        try Host.writeFile(layer + "/hard/.wh.gone", [])
        try FileManager.default.createDirectory(atPath: layer + "/opaque-dir", withIntermediateDirectories: false)
        try Host.writeFile(layer + "/opaque-dir/.wh..wh..opq", [])
        try Host.writeFile(layer + "/opaque-dir/kept", Array("kept".utf8))
        for path in ["/.wh.deleted-file", "/hard/.wh.gone", "/opaque-dir/.wh..wh..opq", "/opaque-dir/kept", "/opaque-dir", "/hard", ""] {
            try Host.setTimes(layer + path, sec: 1_650_000_000, nsec: 5000)
        }
        let expected = dir + "/expected"
        try Host.run(["cp", "-a", "--preserve=all", layer, expected])
        // Whiteouts become char 0/0 devices with mode 0; opaque markers become an xattr.
        for (parent, name) in [("", "deleted-file"), ("/hard", "gone")] {
            let marker = expected + parent + "/.wh." + name
            let st = try Host.lstatOrThrow(marker)
            unlink(marker)
            guard mknod(expected + parent + "/" + name, S_IFCHR, dev_t(cerofs_makedev(0, 0))) == 0 else {
                throw Host.Failure(description: "mknod whiteout")
            }
            _ = chmod(expected + parent + "/" + name, 0)
            _ = lchown(expected + parent + "/" + name, st.st_uid, st.st_gid)
            try Host.setTimes(expected + parent + "/" + name, sec: st.st_mtim.tv_sec, nsec: st.st_mtim.tv_nsec)
        }
        unlink(expected + "/opaque-dir/.wh..wh..opq")
        try Host.setXattr(expected + "/opaque-dir", "trusted.overlay.opaque", Array("y".utf8))
        for path in ["/opaque-dir", "/hard", ""] {
            let st = try Host.lstatOrThrow(layer + path)
            try Host.setTimes(expected + path, sec: st.st_mtim.tv_sec, nsec: st.st_mtim.tv_nsec)
        }
        return (layer, expected)
    }

    @Test("a layer tar keeps whiteouts in overlay form", .enabled(if: canMount && canTar), arguments: [Mode.none, Mode.lz4])
    func overlayForm(mode: Mode) async throws {
        try await TemporaryDirectory.with(prefix: "erofs-layer") { dir in
            let (layer, expected) = try Self.makeLayer(dir)
            let tar = dir + "/layer.tar"
            try Host.run(["tar", "--format=posix", "--xattrs", "--xattrs-include=*", "--sparse", "--numeric-owner",
                          "-C", layer, "-cf", tar, "."])
            try Host.run(["gzip", "-k", tar])
            for input in [tar, tar + ".gz"] {
                var options = EROFSWriterOptions()
                options.compression = mode.compression
                let image = input + ".erofs"
                let writer = try EROFSImageWriter(path: image, options: options)
                try writer.addLayer(tarPath: input, whiteouts: .overlay)
                try writer.finish()
                try verifyImage(image, against: expected, scratch: dir)
            }
        }
    }

    @Test("GNU-format tars with long names and sparse files", .enabled(if: canMount && canTar))
    func gnuFormat() async throws {
        try await TemporaryDirectory.with(prefix: "erofs-gnu") { dir in
            let source = dir + "/src"
            try Corpus.build(at: source, options: .init(bigDirectoryEntries: 200, sparseSize: 256 << 20, depth: 40, socketsAndACLs: false))
            // GNU format keeps no xattrs or sub-second times: those are not compared here.
            let tar = dir + "/gnu.tar"
            try Host.run(["tar", "--format=gnu", "--sparse", "--numeric-owner", "-C", source, "-cf", tar, "."])
            let image = dir + "/gnu.erofs"
            var options = EROFSWriterOptions()
            options.compression = .lz4hc(level: 9)
            let writer = try EROFSImageWriter(path: image, options: options)
            try writer.addLayer(tarPath: tar, whiteouts: .overlay)
            try writer.finish()
            let fsck = try Host.run(["fsck.erofs", image], allowFailure: true)
            #expect(fsck.status == 0, "\(fsck.output)")
            let expected = try TreeComparison.hostTree(source)
            let reader = try EROFSReader(path: image)
            let actual = try TreeComparison.readerTree(reader)
            #expect(Set(expected.keys) == Set(actual.keys))
            for (path, e) in expected {
                guard let a = actual[path] else { continue }
                #expect(e.mode == a.mode && e.size == a.size && e.mtime == a.mtime && e.nlink == a.nlink && e.linkTarget == a.linkTarget,
                        "\(path)")
            }
            let content = try TreeComparison.contentDiff(source, expected, read: TreeComparison.readerRead(reader))
            #expect(content.isEmpty, "\(content)")
        }
    }

    @Test("an opaque marker after same-layer entries keeps them and hides the lower layer")
    func opaqueAfterEntries() async throws {
        try await TemporaryDirectory.with(prefix: "erofs-opq") { dir in
            var l1 = TarBuilder()
            l1.entry("c/", type: "5", mode: 0o755)
            l1.entry("c/old", data: Array("old".utf8))
            l1.entry("c/sub/", type: "5", mode: 0o755)
            l1.entry("c/sub/deep", data: Array("deep".utf8))
            l1.end()
            var l2 = TarBuilder()
            l2.entry("c/sub/added", data: Array("added".utf8))
            l2.entry("c/.wh..wh..opq")
            l2.entry("c/new", data: Array("new".utf8))
            l2.end()
            try Data(l1.bytes).write(to: URL(fileURLWithPath: dir + "/l1.tar"))
            try Data(l2.bytes).write(to: URL(fileURLWithPath: dir + "/l2.tar"))
            let writer = try EROFSImageWriter(path: dir + "/m.erofs")
            try writer.addLayer(tarPath: dir + "/l1.tar", whiteouts: .apply)
            try writer.addLayer(tarPath: dir + "/l2.tar", whiteouts: .apply)
            try writer.finish()
            let reader = try EROFSReader(path: dir + "/m.erofs")
            var paths: [String] = []
            try reader.walk { path, _ in paths.append(String(decoding: path, as: UTF8.self)) }
            #expect(paths.sorted() == ["c", "c/new", "c/sub", "c/sub/added"])
            let added = try reader.lookup("c/sub/added")
            #expect(try reader.readRange(added, at: 0, count: 10) == Array("added".utf8))
        }
    }

    @Test("several layers merge with whiteouts and opaque directories applied", .enabled(if: canMount && canTar))
    func merge() async throws {
        try await TemporaryDirectory.with(prefix: "erofs-merge") { dir in
            let fm = FileManager.default
            func tree(_ root: String, _ files: [String: String], dirs: [String] = []) throws {
                for d in dirs { try fm.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true) }
                for (path, content) in files {
                    try fm.createDirectory(atPath: root + "/" + (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                    try Host.writeFile(root + "/" + path, Array(content.utf8))
                }
            }
            try tree(dir + "/l1", ["a/f1": "one", "a/f2": "two", "b/x": "x", "c/old": "old", "c/sub/deep": "deep", "keep": "k"])
            try tree(dir + "/l2", ["a/.wh.f1": "", ".wh.b": "", "c/.wh..wh..opq": "", "c/new": "new", "d/file": "d", "keep": "k2"])
            try tree(dir + "/l3", ["b/again": "back"])
            var tars: [String] = []
            for l in ["l1", "l2", "l3"] {
                let tar = dir + "/\(l).tar.gz"
                try Host.run(["tar", "--format=posix", "-C", dir + "/" + l, "-czf", tar, "."])
                tars.append(tar)
            }
            let image = dir + "/merged.erofs"
            var options = EROFSWriterOptions()
            options.compression = .lz4
            let writer = try EROFSImageWriter(path: image, options: options)
            for tar in tars { try writer.addLayer(tarPath: tar, whiteouts: .apply) }
            try writer.finish()
            let expected: [String: String] = ["a/f2": "two", "c/new": "new", "d/file": "d", "keep": "k2", "b/again": "back"]
            let expectedDirs: Set<String> = ["a", "b", "c", "d"]
            try Host.withMounted(image, scratch: dir) { mnt in
                var files: [String: String] = [:]
                var dirs: Set<String> = []
                let enumerator = fm.enumerator(atPath: mnt)
                while let path = enumerator?.nextObject() as? String {
                    var isDir: ObjCBool = false
                    _ = fm.fileExists(atPath: mnt + "/" + path, isDirectory: &isDir)
                    if isDir.boolValue { dirs.insert(path) } else {
                        files[path] = String(decoding: try Data(contentsOf: URL(fileURLWithPath: mnt + "/" + path)), as: UTF8.self)
                    }
                }
                #expect(files == expected)
                #expect(dirs == expectedDirs)
                #expect(try Host.xattrs(mnt + "/c").isEmpty)
            }
            let fsck = try Host.run(["fsck.erofs", image], allowFailure: true)
            #expect(fsck.status == 0, "\(fsck.output)")
        }
    }
}
