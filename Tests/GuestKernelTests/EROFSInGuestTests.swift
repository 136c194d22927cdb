import EROFSImage
import Foundation
import Testing
import TestSupport

/// Images written by EROFSImage, read by the guest kernel (Linux 6.1, the oldest
/// kernel the format must serve): every compression mode, checked file by file
/// against the host's digests.
@Suite("EROFSImage images in the 6.1 guest kernel", .serialized)
struct EROFSInGuestTests {
    static let modes: [(name: String, compression: EROFSCompression)] = [
        ("none", .none), ("lz4", .lz4), ("lz4hc", .lz4hc(level: 9)),
    ]

    /// Files whose digests are compared, relative to the tree's root.
    static let files = ["random.bin", "text.txt", "sparse.img", "empty", "deep/a/b/c/d/e/leaf.txt",
                        "big-dir/entry-01999", "hardlink"]

    static func makeTree(at root: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/deep/a/b/c/d/e", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/big-dir", withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        let random = Data((0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try random.write(to: URL(fileURLWithPath: root + "/random.bin"))  // incompressible
        var text = ""
        for index in 0..<8000 { text += "line \(index): the guest kernel must decompress this\n" }
        try Data(text.utf8).write(to: URL(fileURLWithPath: root + "/text.txt"))
        try Data().write(to: URL(fileURLWithPath: root + "/empty"))
        try Data("leaf\n".utf8).write(to: URL(fileURLWithPath: root + "/deep/a/b/c/d/e/leaf.txt"))
        for index in 0..<2000 {
            try Data("entry \(index)\n".utf8).write(to: URL(fileURLWithPath: root + String(format: "/big-dir/entry-%05d", index)))
        }
        // 64 MiB sparse file with data at both ends.
        #expect(fm.createFile(atPath: root + "/sparse.img", contents: Data("head".utf8)))
        let handle = try #require(FileHandle(forWritingAtPath: root + "/sparse.img"))
        try handle.seek(toOffset: 64 << 20)
        try handle.write(contentsOf: Data("tail".utf8))
        try handle.close()
        try fm.createSymbolicLink(atPath: root + "/link", withDestinationPath: "text.txt")
        try fm.linkItem(atPath: root + "/text.txt", toPath: root + "/hardlink")
    }

    static func sha256(_ path: String) throws -> String {
        let output = try GuestFixtures.run("sha256sum", [path])
        return String(output.split(separator: " ").first ?? "")
    }

    @Test("none, lz4 and lz4hc images mount in the guest and every file reads back byte-exact",
          .enabled(if: GuestKernel.available && Prerequisite.tools("qemu-system-x86_64", "busybox", "cpio")))
    func imagesReadByGuestKernel() async throws {
        let kernel = try #require(GuestKernel.path, "no guest kernel; CI builds it via scripts/install-deps.sh")
        try await TemporaryDirectory.with(prefix: "qemubox-erofs-guest") { dir in
            let tree = dir + "/tree"
            try Self.makeTree(at: tree)
            var images: [String] = []
            for mode in Self.modes {
                var options = EROFSWriterOptions()
                options.compression = mode.compression
                let path = dir + "/\(mode.name).erofs"
                let writer = try EROFSImageWriter(path: path, options: options)
                try writer.addDirectory(tree)
                _ = try writer.finish()
                images.append(path)
            }
            var script = "#!/bin/busybox sh\n/bin/busybox --install -s /bin\n"
                + "mount -t proc proc /proc\nmount -t devtmpfs dev /dev\n"
            for (index, mode) in Self.modes.enumerated() {
                let device = "/dev/vd" + String(UnicodeScalar(UInt8(97 + index)))
                script += "mkdir -p /m/\(mode.name)\n"
                script += "mount -t erofs -o ro \(device) /m/\(mode.name) && echo \"QBX \(mode.name) mounted\"\n"
                for file in Self.files {
                    script += "echo \"QBX \(mode.name) \(file) $(sha256sum /m/\(mode.name)/\(file) | cut -d' ' -f1)\"\n"
                }
                script += "echo \"QBX \(mode.name) entries $(ls /m/\(mode.name)/big-dir | wc -l)\"\n"
                script += "echo \"QBX \(mode.name) link $(readlink /m/\(mode.name)/link)\"\n"
                script += "echo \"QBX \(mode.name) links $(stat -c %h /m/\(mode.name)/text.txt)\"\n"
            }
            script += "echo 'QBX done'\npoweroff -f\n"
            let initrd = try GuestFixtures.initramfs(in: dir, script: script)
            var arguments = GuestVM.microvmArguments(kernel: kernel, initrd: initrd)
            for (index, image) in images.enumerated() {
                arguments += ["-drive", "file=\(image),if=none,id=d\(index),format=raw,readonly=on",
                              "-device", "virtio-blk-device,drive=d\(index)"]
            }
            let vmArguments = arguments
            let result = try await ConcurrencyLimit.vms.run {
                let vm = try GuestVM(arguments: vmArguments)
                defer { vm.kill() }
                return try await vm.wait(timeout: 180)
            }
            #expect(result.value("QBX done") != nil, "guest did not finish:\n\(result.console)")
            for mode in Self.modes {
                #expect(result.value("QBX \(mode.name) mounted") != nil, "\(mode.name) not mounted:\n\(result.console)")
                for file in Self.files {
                    let expected = try Self.sha256(tree + "/" + file)
                    #expect(result.value("QBX \(mode.name) \(file) ") == expected, "\(mode.name): \(file)")
                }
                #expect(result.value("QBX \(mode.name) entries ") == "2000")
                #expect(result.value("QBX \(mode.name) link ") == "text.txt")
                #expect(result.value("QBX \(mode.name) links ") == "2")
            }
        }
    }
}
