import ContainerdTestSupport
import Foundation
@testable import QemuboxOperator
import TestSupport
import Testing

/// `qemubox inspect` on images converted here, and on files that are no EROFS image.
@Suite struct InspectTests {
    struct Report: Decodable {
        var summary: ImageInspection.Summary
        var entries: [ImageInspection.Entry]?
    }

    @Test(.enabled(if: ConvertTests.toolsPresent))
    func summaryAndListing() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-inspect") { dir in
            try ConvertTests.makeTree(dir + "/tree")
            _ = FileManager.default.createFile(atPath: dir + "/tree/etc/.wh.gone", contents: Data())
            try await Shell.check("tar -C \(dir)/tree -cf \(dir)/layer.tar .")
            let image = dir + "/layer.erofs"
            _ = try await QemuboxBinary.json(ImageConversion.Summary.self, ["convert", dir + "/layer.tar", image])

            let report = try await QemuboxBinary.json(Report.self, ["inspect", "--list", image])
            let s = report.summary
            #expect(s.blockSize == 4096)
            #expect(s.imageBytes == UInt64(s.blocks) * 4096)
            #expect(s.entries["directory"] == 3)
            #expect(s.entries["file"] == 5)  // motd, motd.hard, empty, big, tool
            #expect(s.entries["symlink"] == 1)
            #expect(s.entries["char"] == 1)
            #expect(s.whiteouts == 1)
            #expect(s.inodes == 10)  // with the root; motd and motd.hard are one inode
            #expect(s.features.contains("zero_padding"))
            #expect(s.compressedFiles >= 1)
            let entries = try #require(report.entries)
            #expect(entries.map(\.path) == ["/bin", "/bin/link", "/bin/tool", "/etc", "/etc/conf.d", "/etc/conf.d/big",
                                            "/etc/empty", "/etc/gone", "/etc/motd", "/etc/motd.hard"])
            let tool = try #require(entries.first { $0.path == "/bin/tool" })
            #expect(tool.mode == "04755" && tool.size == 70_000 && tool.type == "file")
            #expect(entries.first { $0.path == "/bin/link" }?.target == "tool")
            #expect(entries.first { $0.path == "/etc/gone" }?.device == "0:0")

            // What fsck.erofs says about the same image.
            let fsck = try await Shell.check("fsck.erofs -p \(image) 2>&1 || true")
            #expect(!fsck.contains("corrupt"), "\(fsck)")

            // The table form names the same facts.
            let table = try await QemuboxBinary.run(["inspect", "--list", image])
            #expect(table.status == 0)
            #expect(table.stdout.contains("1 whiteouts"))
            let toolLine = table.stdout.split(separator: "\n").first { $0.hasSuffix(" /bin/tool") }
            #expect(toolLine?.split(separator: " ").map(String.init) == ["-rwsr-xr-x", "0:0", "70000", "/bin/tool"],
                    "\(table.stdout)")
            #expect(table.stdout.contains("/bin/link -> tool"))
        }
    }

    @Test(.enabled(if: QemuboxBinary.available))
    func notAnImage() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-inspect") { dir in
            try Data(repeating: 0xAB, count: 8192).write(to: URL(fileURLWithPath: dir + "/junk"))
            let junk = try await QemuboxBinary.run(["inspect", dir + "/junk"])
            #expect(junk.status == 1)
            #expect(junk.stderr.contains("qemubox: corrupt_image:"), "\(junk.stderr)")
            let missing = try await QemuboxBinary.run(["inspect", dir + "/nope"])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("qemubox: io:"), "\(missing.stderr)")
        }
    }
}
