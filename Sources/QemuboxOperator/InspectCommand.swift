import ArgumentParser
import Foundation

/// `qemubox inspect`.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show an EROFS image's superblock and a summary of its files (--list: every entry).")

    @OptionGroup var global: GlobalOptions

    @Flag(name: .shortAndLong, help: "List every entry (mode, owner, size, path).")
    var list = false

    @Argument(help: "The EROFS image.")
    var image: String

    /// The JSON document.
    struct Report: Codable {
        var summary: ImageInspection.Summary
        var entries: [ImageInspection.Entry]?
    }

    func run() throws {
        let (summary, entries) = try ImageInspection.inspect(image, list: list)
        switch global.format {
        case .json:
            Output.out(try Output.json(Report(summary: summary, entries: list ? entries : nil)))
        case .table:
            let counts = summary.entries.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
            var facts: [(String, String)] = [
                ("image", "\(summary.path) (\(Units.bytes(summary.imageBytes)))"),
                ("block size", "\(summary.blockSize)"),
                ("blocks", "\(summary.blocks)"),
                ("inodes", "\(summary.inodes)"),
                ("root nid", "\(summary.rootNid)"),
                ("build time", ISO8601DateFormatter().string(from: summary.buildTime)),
                ("uuid", summary.uuid),
                ("volume name", summary.volumeName.isEmpty ? "-" : summary.volumeName),
                ("features", summary.features.joined(separator: " ")),
                ("entries", counts.isEmpty ? "none" : counts.joined(separator: ", ")),
                ("file data", "\(Units.bytes(summary.fileBytes)) (\(summary.compressedFiles) compressed, "
                    + "\(summary.chunkedFiles) chunked files)"),
            ]
            if summary.whiteouts > 0 || summary.opaqueDirectories > 0 {
                facts.append(("overlay", "\(summary.whiteouts) whiteouts, \(summary.opaqueDirectories) opaque directories"))
            }
            let width = facts.map(\.0.count).max() ?? 0
            Output.out(facts.map { $0.0 + ":" + String(repeating: " ", count: width - $0.0.count + 2) + $0.1 + "\n" }.joined())
            guard list else { return }
            Output.out("\n" + Output.table(
                ["MODE", "OWNER", "SIZE", "PATH"],
                entries.map { e in
                    [Self.letter(e.type) + Self.permissions(e.mode), "\(e.uid):\(e.gid)", e.device ?? "\(e.size)",
                     e.path + (e.target.map { " -> " + $0 } ?? "")]
                }))
        }
    }

    /// `rwxr-xr-x` (with `s`/`S`, `t`/`T` for setuid, setgid and sticky) from an octal mode.
    static func permissions(_ octal: String) -> String {
        let mode = Int(octal, radix: 8) ?? 0
        var text = ""
        for (shift, special, mark) in [(6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")] {
            let bits = mode >> shift & 7
            text += bits & 4 != 0 ? "r" : "-"
            text += bits & 2 != 0 ? "w" : "-"
            if mode & special != 0 {
                text += bits & 1 != 0 ? mark : mark.uppercased()
            } else {
                text += bits & 1 != 0 ? "x" : "-"
            }
        }
        return text
    }

    static func letter(_ type: String) -> String {
        switch type {
        case "directory": "d"
        case "symlink": "l"
        case "char": "c"
        case "block": "b"
        case "fifo": "p"
        case "socket": "s"
        default: "-"
        }
    }
}
