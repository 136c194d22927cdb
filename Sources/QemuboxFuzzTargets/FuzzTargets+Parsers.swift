import EROFSImage
import Foundation
import QemuboxAPI
import QemuboxKit

extension FuzzTargets {
    /// The header line of a guest stream (`qemubox ttrpc\n`, `qemubox stdio KEY\n`):
    /// `GuestStreamHeader.parse` on the input decoded as UTF-8 (invalid sequences
    /// repaired, as the agent's reader does), and `isValidKey` on it; an accepted
    /// header must print back to the same line.
    public static func guestStreamHeader(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        _ = GuestStreamHeader.isValidKey(text)
        guard let header = try? GuestStreamHeader.parse(text) else { return }
        let line = text.hasSuffix("\n") ? text : text + "\n"
        precondition(header.line == line, "header \(header) does not print back as \(line.debugDescription)")
    }

    /// `config.toml`: `QemuboxConfiguration.parse(bytes:source:)` (qemubox's TOML 1.0
    /// parser, then the key-by-key checks and `validate`) on the raw input, invalid UTF-8
    /// included. A refusal must be an `invalidConfiguration` error naming the file.
    public static func configTOML(_ data: [UInt8]) {
        do {
            _ = try QemuboxConfiguration.parse(bytes: data, source: "fuzz.toml")
        } catch let error as QemuboxError {
            precondition(error.code == .invalidConfiguration && error.message.hasPrefix("fuzz.toml:"),
                         "config.toml refused with an unexpected error: \(error)")
        } catch {
            preconditionFailure("config.toml refused with a foreign error: \(error)")
        }
    }

    /// OCI layer tarballs: the input is written to a file and converted with
    /// `EROFSImageWriter.addLayer(tarPath:whiteouts:)` (plain or gzip tar: ustar,
    /// PAX, GNU long names and sparse files; lz4 compression inline, no worker
    /// threads), whiteouts in overlay form when the input has an even number of
    /// 512-byte blocks and applied when odd; `finish()` writes the image. Limits are lowered (64 MiB files,
    /// 64 KiB metadata records, 10,000 entries) to keep runs short; the checks are
    /// the same code.
    public static func tarReader(_ data: [UInt8]) {
        FuzzScratch.withDirectory { dir in
            let tar = dir + "/layer.tar", image = dir + "/layer.erofs"
            guard FuzzScratch.write(data, to: tar) else { return }
            var options = EROFSWriterOptions()
            options.compression = .lz4
            options.compressionThreads = 0
            options.fixedTimestamp = 0
            options.temporaryDirectory = dir
            options.tarLimits.maxFileSize = 64 << 20
            options.tarLimits.maxMetadataRecord = 64 << 10
            options.tarLimits.maxEntries = 10_000
            do {
                let writer = try EROFSImageWriter(path: image, options: options)
                try writer.addLayer(tarPath: tar, whiteouts: data.count / 512 % 2 == 0 ? .overlay : .apply)
                _ = try writer.finish()
            } catch {
                // Refused: expected for a corrupt tar.
            }
        }
    }

    /// EROFS images: the input is written to a file and opened with `EROFSReader`;
    /// every entry is walked (at most 2,000, as a cap against exponential
    /// directory sharing, see Documentation/fuzzing.md), and each inode's xattrs,
    /// symlink target and first 64 KiB of data are read (once per inode).
    public static func erofsReader(_ data: [UInt8]) {
        FuzzScratch.withDirectory { dir in
            let path = dir + "/image.erofs"
            guard FuzzScratch.write(data, to: path) else { return }
            do {
                let reader = try EROFSReader(path: path)
                var visited = 0
                var read = Set<UInt64>()
                try reader.walk { _, inode in
                    visited += 1
                    guard visited <= 2_000 else { throw FuzzStop() }
                    // An inode named by many entries is read once (decompressing it
                    // again and again finds nothing new and slows the run down).
                    guard read.insert(inode.nid).inserted else { return }
                    _ = try? reader.xattrs(inode)
                    if inode.isSymlink { _ = try? reader.readLink(inode) }
                    if inode.isRegular { _ = try? reader.readRange(inode, at: 0, count: Int(min(inode.size, 64 << 10))) }
                }
                _ = try? reader.lookup("etc/passwd")
            } catch {
                // A corrupt image is refused: expected.
            }
        }
    }

    /// The writeback stream (`System/ExportChanges`): the input is a sequence of
    /// records, each a 2-byte big-endian length and a protobuf `ChangeRecord`; they
    /// are decoded and applied by `ChangeApplier` into a fresh directory (overlay
    /// mode for an even input length, plain apply for an odd one) under a small
    /// `WritebackPolicy` (1 MiB of data, 1,000 records), then `finish()`. A sentinel
    /// directory beside the target must stay untouched: anything written outside
    /// the target is a crash. The directories are removed after each input.
    public static func writebackStream(_ data: [UInt8]) {
        FuzzScratch.withDirectory { dir in
            let target = dir + "/fs", outside = dir + "/outside"
            guard mkdir(target, 0o755) == 0, mkdir(outside, 0o755) == 0,
                  FuzzScratch.write(Array("host".utf8), to: outside + "/secret")
            else { return }
            var policy = WritebackPolicy(maxDataBytes: 1 << 20)
            policy.maxEntries = 1_000
            policy.maxFileSize = 1 << 20
            let mode: RootfsWriteback.Mode = data.count % 2 == 0 ? .overlayUpper : .apply
            do {
                let applier = try ChangeApplier(target: .init(directory: target, mode: mode), policy: policy)
                var rest = data[...]
                while rest.count >= 2 {
                    let length = Int(rest[rest.startIndex]) << 8 | Int(rest[rest.startIndex + 1])
                    rest = rest.dropFirst(2)
                    let bytes = rest.prefix(length)
                    rest = rest.dropFirst(length)
                    let record = try Qemubox_Guest_V1_ChangeRecord(serializedBytes: Array(bytes))
                    try applier.apply(record)
                }
                _ = try applier.finish()
            } catch {
                // Refused record or undecodable message: the writeback ends with an error.
            }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: outside)) ?? []
            precondition(names == ["secret"] && FuzzScratch.read(outside + "/secret") == Array("host".utf8),
                         "the writeback touched a directory outside its target")
        }
    }
}

/// Thrown by a walk callback to stop early.
struct FuzzStop: Error {}
