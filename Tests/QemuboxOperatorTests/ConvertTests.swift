import ContainerdTestSupport
import EROFSImage
import Foundation
@testable import QemuboxOperator
import TestSupport
import Testing

/// `qemubox convert` of a directory, a layer tar and OCI layouts: each image passes
/// `fsck.erofs`, extracts to the expected tree, and reads back with `EROFSReader`.
@Suite struct ConvertTests {
    static var toolsPresent: Bool { QemuboxBinary.available && Prerequisite.tools("fsck.erofs", "tar", "gzip", "sha256sum") }

    /// A tree with what images hold: nested directories, empty and large files, a symlink,
    /// a hardlink, odd modes.
    static func makeTree(_ root: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/etc/conf.d", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try "hello\n".write(toFile: root + "/etc/motd", atomically: false, encoding: .utf8)
        try Data().write(to: URL(fileURLWithPath: root + "/etc/empty"))
        try String(repeating: "compressible line\n", count: 20_000).write(toFile: root + "/etc/conf.d/big", atomically: false, encoding: .utf8)
        try Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
            .write(to: URL(fileURLWithPath: root + "/bin/tool"))
        chmod(root + "/bin/tool", 0o4755)
        try fm.createSymbolicLink(atPath: root + "/bin/link", withDestinationPath: "tool")
        link(root + "/etc/motd", root + "/etc/motd.hard")
    }

    /// `fsck.erofs --extract` of `image` into a new directory under `dir`.
    static func extract(_ image: String, in dir: String) async throws -> String {
        let out = dir + "/extract-" + UUID().uuidString
        try await Shell.check("fsck.erofs --extract=\(Shell.quote(out)) \(Shell.quote(image))")
        return out
    }

    static func contents(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    @Test(.enabled(if: toolsPresent))
    func directory() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-convert") { dir in
            try Self.makeTree(dir + "/tree")
            let image = dir + "/tree.erofs"
            let summary = try await QemuboxBinary.json(ImageConversion.Summary.self, ["convert", dir + "/tree", image])
            #expect(summary.sourceKind == "directory")
            #expect(summary.layers == 1)
            #expect(summary.compressedFiles >= 1)
            #expect(summary.inodes == 9)  // root, etc, conf.d, bin, motd(+hard), empty, big, tool, link
            try await Shell.check("fsck.erofs \(image)")
            let out = try await Self.extract(image, in: dir)
            try await Shell.check("diff -r --no-dereference \(dir)/tree \(out)")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/bin/link") == "tool")

            // EROFSReader reads the same bytes back, and what fsck.erofs --extract does not keep:
            // the setuid bit and the hardlink.
            let reader = try EROFSReader(path: image)
            #expect(try reader.lookup("bin/tool").mode & 0o7777 == 0o4755)
            #expect(try reader.lookup("etc/motd").nid == reader.lookup("etc/motd.hard").nid)
            let big = try reader.lookup("etc/conf.d/big")
            let bytes = try reader.readRange(big, at: 0, count: Int(big.size))
            #expect(bytes == Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/tree/etc/conf.d/big"))))

            // An existing output is refused without --force (usage, exit 2), replaced with it.
            let again = try await QemuboxBinary.run(["convert", dir + "/tree", image])
            #expect(again.status == 2 && again.stderr.contains("--force"))
            let forced = try await QemuboxBinary.run(["convert", "--force", "--compression", "none", dir + "/tree", image])
            #expect(forced.status == 0, "\(forced.stderr)")
            #expect(forced.stdout.contains("0 compressed files"), "\(forced.stdout)")
            // No temporary file is left beside the output.
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp.") }.isEmpty)
        }
    }

    @Test(.enabled(if: toolsPresent))
    func layerTarKeepsWhiteouts() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-convert") { dir in
            try Self.makeTree(dir + "/tree")
            // An OCI whiteout in the layer: kept as an overlay whiteout (char 0/0) in the image.
            _ = FileManager.default.createFile(atPath: dir + "/tree/etc/.wh.removed", contents: Data())
            try await Shell.check("tar -C \(dir)/tree -czf \(dir)/layer.tar.gz .")
            let image = dir + "/layer.erofs"
            let summary = try await QemuboxBinary.json(ImageConversion.Summary.self, ["convert", dir + "/layer.tar.gz", image])
            #expect(summary.sourceKind == "layer-tar")
            try await Shell.check("fsck.erofs \(image)")
            let reader = try EROFSReader(path: image)
            let whiteout = try reader.lookup("etc/removed")
            #expect(whiteout.mode & 0o170000 == 0o020000 && whiteout.device.major == 0 && whiteout.device.minor == 0)
            let motd = try reader.lookup("etc/motd")
            #expect(try reader.readRange(motd, at: 0, count: 100) == Array("hello\n".utf8))
            #expect(try reader.readLink(try reader.lookup("bin/link")) == Array("tool".utf8))

            // A file that is no tar fails with the stable code, exit 1, and leaves nothing behind.
            try "not a tar at all".write(toFile: dir + "/junk.tar", atomically: false, encoding: .utf8)
            let junk = try await QemuboxBinary.run(["convert", dir + "/junk.tar", dir + "/junk.erofs"])
            #expect(junk.status == 1)
            #expect(junk.stderr.contains("qemubox: conversion:"), "\(junk.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/junk.erofs"))
        }
    }

    /// An OCI layout with two layers (the second replaces a file, deletes one with a whiteout
    /// and makes a directory opaque) merges into one tree; a two-platform index picks the host's
    /// platform unless --platform says otherwise.
    @Test(.enabled(if: toolsPresent))
    func ociLayout() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-convert") { dir in
            let fm = FileManager.default
            let layout = dir + "/layout"
            try fm.createDirectory(atPath: layout + "/blobs/sha256", withIntermediateDirectories: true)
            func write(_ path: String, _ text: String) throws {
                try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try text.write(toFile: path, atomically: false, encoding: .utf8)
            }
            /// Stores `file` as a blob; returns a descriptor's JSON.
            func blob(_ file: String, _ mediaType: String, platform: String? = nil) async throws -> String {
                let digest = try await Shell.check("sha256sum \(file) | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)
                try? fm.removeItem(atPath: layout + "/blobs/sha256/" + digest)
                try fm.copyItem(atPath: file, toPath: layout + "/blobs/sha256/" + digest)
                let size = try fm.attributesOfItem(atPath: file)[.size] as? Int ?? 0
                let platformJSON = platform.map { p -> String in
                    let parts = p.split(separator: "/")
                    return #","platform":{"os":"\#(parts[0])","architecture":"\#(parts[1])"}"#
                } ?? ""
                return #"{"mediaType":"\#(mediaType)","digest":"sha256:\#(digest)","size":\#(size)\#(platformJSON)}"#
            }
            try write(dir + "/l1/a", "one\n")
            try write(dir + "/l1/b", "bee\n")
            try write(dir + "/l1/d/x", "ex\n")
            try write(dir + "/l2/a", "two\n")
            try write(dir + "/l2/.wh.b", "")
            try write(dir + "/l2/d/.wh..wh..opq", "")
            try write(dir + "/l2/d/y", "why\n")
            try await Shell.check("tar -C \(dir)/l1 -czf \(dir)/l1.tgz . && tar -C \(dir)/l2 -cf \(dir)/l2.tar .")
            let layer1 = try await blob(dir + "/l1.tgz", "application/vnd.oci.image.layer.v1.tar+gzip")
            let layer2 = try await blob(dir + "/l2.tar", "application/vnd.oci.image.layer.v1.tar")
            try write(dir + "/config.json", #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#)
            let config = try await blob(dir + "/config.json", "application/vnd.oci.image.config.v1+json")
            try write(dir + "/m-amd64.json", #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":\#(config),"layers":[\#(layer1),\#(layer2)]}"#)
            try write(dir + "/m-arm64.json", #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":\#(config),"layers":[\#(layer1)]}"#)
            let amd64 = try await blob(dir + "/m-amd64.json", "application/vnd.oci.image.manifest.v1+json", platform: "linux/amd64")
            let arm64 = try await blob(dir + "/m-arm64.json", "application/vnd.oci.image.manifest.v1+json", platform: "linux/arm64")
            // The top index points at a nested index, as `docker save`/`skopeo` layouts do.
            try write(dir + "/nested.json", #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[\#(arm64),\#(amd64)]}"#)
            let nested = try await blob(dir + "/nested.json", "application/vnd.oci.image.index.v1+json")
            try write(layout + "/index.json", #"{"schemaVersion":2,"manifests":[\#(nested)]}"#)
            try write(layout + "/oci-layout", #"{"imageLayoutVersion":"1.0.0"}"#)

            let image = dir + "/merged.erofs"
            let summary = try await QemuboxBinary.json(ImageConversion.Summary.self,
                                                       ["convert", "--platform", "linux/amd64", layout, image])
            #expect(summary.sourceKind == "oci-layout")
            #expect(summary.layers == 2)
            try await Shell.check("fsck.erofs \(image)")
            let merged = try await Self.extract(image, in: dir)
            #expect(Self.contents(merged + "/a") == "two\n")
            #expect(!fm.fileExists(atPath: merged + "/b"))
            #expect(!fm.fileExists(atPath: merged + "/d/x"))
            #expect(Self.contents(merged + "/d/y") == "why\n")
            #expect(!fm.fileExists(atPath: merged + "/.wh.b"))
            let inspected = try ImageInspection.inspect(image, list: true)
            #expect(inspected.summary.whiteouts == 0)
            #expect(inspected.entries.map(\.path).sorted() == ["/a", "/d", "/d/y"])

            let arm = dir + "/arm.erofs"
            let single = try await QemuboxBinary.json(ImageConversion.Summary.self,
                                                      ["convert", "--platform", "linux/arm64", layout, arm])
            #expect(single.layers == 1)
            let one = try await Self.extract(arm, in: dir)
            #expect(Self.contents(one + "/a") == "one\n" && Self.contents(one + "/b") == "bee\n")

            let none = try await QemuboxBinary.run(["convert", "--platform", "linux/s390x", layout, dir + "/none.erofs"])
            #expect(none.status == 1, "\(none.stderr)")
            #expect(none.stderr.contains("no manifest for linux/s390x") && none.stderr.contains("linux/arm64")
                && none.stderr.contains("linux/amd64"), "\(none.stderr)")

            // A blob whose size is not what the manifest says is refused before anything is written.
            let l2digest = layer2.split(separator: "\"")[7].dropFirst("sha256:".count)
            try "short".write(toFile: layout + "/blobs/sha256/" + l2digest, atomically: false, encoding: .utf8)
            let bad = try await QemuboxBinary.run(["convert", "--platform", "linux/amd64", layout, dir + "/bad.erofs"])
            #expect(bad.status == 1 && bad.stderr.contains("the manifest says"), "\(bad.stderr)")
            #expect(!fm.fileExists(atPath: dir + "/bad.erofs"))
        }
    }

    /// The busybox image the containerd tests import, as an OCI layout on disk.
    @Test(.enabled(if: toolsPresent && Prerequisite.tools("python3", "busybox")))
    func busyboxLayout() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-convert") { dir in
            try await Shell.check("python3 \(PrivateContainerd.packageRoot)/scripts/make-busybox-image.py \(dir)/image.tar "
                + "&& mkdir \(dir)/layout && tar -C \(dir)/layout -xf \(dir)/image.tar")
            let image = dir + "/busybox.erofs"
            let result = try await QemuboxBinary.run(["convert", dir + "/layout", image])
            #expect(result.status == 0, "\(result.stderr)")
            // Not a terminal: plain lines on stderr, never a redrawn bar.
            #expect(!result.stderr.contains("\r"))
            try await Shell.check("fsck.erofs \(image)")
            let reader = try EROFSReader(path: image)
            #expect(try reader.readLink(try reader.lookup("bin/sh")) == Array("busybox".utf8))
            #expect(try reader.lookup("bin/busybox").size > 100_000)
        }
    }
}
