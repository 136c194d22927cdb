import EROFSImage
import Foundation
import Testing
import TestSupport

/// The compression modes every corpus test runs in.
enum Mode: String, CaseIterable, Sendable, CustomStringConvertible {
    case none, lz4, lz4hc
    var compression: EROFSCompression {
        switch self {
        case .none: return .none
        case .lz4: return .lz4
        case .lz4hc: return .lz4hc(level: 9)
        }
    }
    var description: String { rawValue }
}

/// Checks an image against a source tree: fsck.erofs, the kernel's view through a
/// loop mount, and the library's own reader.
func verifyImage(_ image: String, against source: String, scratch: String) throws {
    let fsck = try Host.run(["fsck.erofs", image], allowFailure: true)
    #expect(fsck.status == 0, "fsck.erofs: \(fsck.output)")
    let expected = try TreeComparison.hostTree(source)
    let kernelView = try Host.withMounted(image, scratch: scratch) { mnt -> [String: TreeComparison.Entry] in
        let listing = try TreeComparison.hostTree(mnt)
        let contentProblems = try TreeComparison.contentDiff(source, expected, read: TreeComparison.hostRead(mnt))
        #expect(contentProblems.isEmpty, "kernel content: \(contentProblems)")
        return listing
    }
    let kernelProblems = TreeComparison.diff(expected, kernelView)
    #expect(kernelProblems.isEmpty, "kernel view: \(kernelProblems.joined(separator: "\n"))")

    let reader = try EROFSReader(path: image)
    let readerView = try TreeComparison.readerTree(reader)
    let readerProblems = TreeComparison.diff(kernelView, readerView)
    #expect(readerProblems.isEmpty, "reader vs kernel: \(readerProblems.joined(separator: "\n"))")
    let readerContent = try TreeComparison.contentDiff(source, expected, read: TreeComparison.readerRead(reader))
    #expect(readerContent.isEmpty, "reader content: \(readerContent)")
}

let canMount = Prerequisite.tools("fsck.erofs", "losetup", "mount") && (Prerequisite.isRoot || Prerequisite.isCI)

@Suite("EROFS images from directories", .serialized)
struct DirectoryImageTests {
    @Test("the full corpus survives fsck, the kernel and the reader", .enabled(if: canMount), arguments: Mode.allCases)
    func corpus(mode: Mode) async throws {
        try await TemporaryDirectory.with(prefix: "erofs-corpus") { dir in
            let source = dir + "/src"
            try Corpus.build(at: source)
            var options = EROFSWriterOptions()
            options.compression = mode.compression
            let image = dir + "/image.erofs"
            let writer = try EROFSImageWriter(path: image, options: options)
            try writer.addDirectory(source)
            let summary = try writer.finish()
            if mode != .none { #expect(summary.compressedFiles > 0) }
            // The 1 GiB sparse file must not cost 1 GiB.
            #expect(summary.imageBytes < 64 << 20, "image is \(summary.imageBytes) bytes")
            try verifyImage(image, against: source, scratch: dir)
        }
    }

    @Test("the same input gives the same bytes, with or without worker threads")
    func deterministic() async throws {
        try await TemporaryDirectory.with(prefix: "erofs-det") { dir in
            let source = dir + "/src"
            try Corpus.build(at: source, options: .init(bigDirectoryEntries: 500, sparseSize: 8 << 20, depth: 8))
            var images: [Data] = []
            for i in 0..<2 {
                var options = EROFSWriterOptions()
                options.compression = .lz4hc(level: 6)
                options.compressionThreads = i == 0 ? 0 : 2
                let writer = try EROFSImageWriter(path: dir + "/\(i).erofs", options: options)
                try writer.addDirectory(source)
                try writer.finish()
                images.append(try Data(contentsOf: URL(fileURLWithPath: dir + "/\(i).erofs")))
            }
            #expect(images[0] == images[1])
        }
    }

    @Test("a fixed timestamp makes every inode compact and carries that mtime", .enabled(if: canMount))
    func fixedTimestamp() async throws {
        try await TemporaryDirectory.with(prefix: "erofs-ts") { dir in
            let source = dir + "/src"
            try Corpus.build(at: source, options: .init(bigDirectoryEntries: 10, sparseSize: 1 << 20, depth: 3))
            var options = EROFSWriterOptions()
            options.fixedTimestamp = 1_234_567_890
            let image = dir + "/image.erofs"
            let writer = try EROFSImageWriter(path: image, options: options)
            try writer.addDirectory(source)
            try writer.finish()
            let reader = try EROFSReader(path: image)
            var count = 0
            try reader.walk { _, inode in
                count += 1
                #expect(inode.mtime == 1_234_567_890 && inode.mtimeNsec == 0)
            }
            #expect(count > 50)
            let status = try Host.run(["fsck.erofs", image], allowFailure: true)
            #expect(status.status == 0, "\(status.output)")
        }
    }

    @Test("bad arguments and missing inputs give clear errors")
    func errors() async throws {
        try await TemporaryDirectory.with(prefix: "erofs-err") { dir in
            var options = EROFSWriterOptions()
            options.maxExtentBytes = 10
            #expect(throws: EROFSError.self) { _ = try EROFSImageWriter(path: dir + "/x.erofs", options: options) }
            let writer = try EROFSImageWriter(path: dir + "/y.erofs")
            do {
                try writer.addDirectory(dir + "/missing")
                Issue.record("expected an error")
            } catch let error as EROFSError {
                #expect(error.code == .invalidArgument || error.code == .io)
                #expect(error.message.contains("missing"))
            }
            #expect(throws: EROFSError.self) { try writer.finish() }
            #expect(throws: EROFSError.self) { _ = try EROFSReader(path: dir + "/x-does-not-exist") }
            try Host.writeFile(dir + "/garbage", [UInt8](repeating: 7, count: 8192))
            #expect(throws: EROFSError.self) { _ = try EROFSReader(path: dir + "/garbage") }
        }
    }
}
