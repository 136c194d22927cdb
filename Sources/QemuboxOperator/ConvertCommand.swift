#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EROFSImage
import Foundation

/// `qemubox convert`.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Turn a directory, a layer tar (plain or gzip) or an OCI image layout into an EROFS image.",
        discussion: """
            A layer tar keeps its whiteouts in overlay form (usable as an overlay lowerdir); an OCI \
            layout's layers are applied in order into one tree. A progress bar is drawn when stderr \
            is a terminal, plain lines otherwise.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("none, lz4 or lz4hc[,LEVEL].", valueName: "compression"))
    var compression = "lz4"

    @Option(help: ArgumentHelp("The platform to take from a multi-platform OCI layout.", valueName: "os/arch"))
    var platform = ImageConversion.hostPlatform

    @Flag(help: "Replace OUTPUT if it exists.")
    var force = false

    @Argument(help: "A directory, a layer tar or an OCI image layout directory.")
    var source: String

    @Argument(help: "The EROFS image to write.")
    var output: String

    func validate() throws {
        guard Self.compression(compression) != nil else {
            throw ValidationError("--compression must be none, lz4 or lz4hc[,LEVEL 1…12], not \(compression)")
        }
    }

    static func compression(_ text: String) -> EROFSCompression? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        switch (parts.first, parts.count) {
        case ("none", 1): return EROFSCompression.none
        case ("lz4", 1): return .lz4
        case ("lz4hc", 1): return .lz4hc(level: 9)
        case ("lz4hc", 2):
            guard let level = Int(parts[1]), (1...12).contains(level) else { return nil }
            return .lz4hc(level: level)
        default: return nil
        }
    }

    func run() throws {
        if FileManager.default.fileExists(atPath: output) && !force {
            throw OperatorError(.usage, "\(output) exists; pass --force to replace it")
        }
        var options = EROFSWriterOptions()
        options.compression = Self.compression(compression) ?? .lz4
        let conversion = ImageConversion(options: options, platform: platform)
        let source = try conversion.source(self.source)
        let bar = ProgressBar(terminal: isatty(2) == 1)
        if case .ociLayout(_, let manifest, let layers) = source, !bar.terminal {
            Output.err("converting \(self.source): manifest \(manifest), \(layers.count) layer(s)\n")
        }
        let summary: ImageConversion.Summary
        do {
            summary = try conversion.convert(source, to: output) { layer, layers, progress in
                bar.update(layer: layer, of: layers, progress)
            }
            bar.done()
        } catch {
            bar.done()
            throw error
        }
        switch global.format {
        case .json:
            Output.out(try Output.json(summary))
        case .table:
            Output.out("\(summary.output): \(summary.sourceKind), \(summary.layers) layer(s) → \(summary.inodes) inodes, "
                + "\(Units.bytes(summary.imageBytes)), \(summary.compressedFiles) compressed files, "
                + String(format: "%.1f s\n", summary.seconds))
        }
    }
}

/// Progress on stderr: a redrawn bar on a terminal (at most ten times a second), otherwise a
/// plain line when a layer starts and every 10 seconds.
final class ProgressBar {
    let terminal: Bool
    private var last = ContinuousClock.now - .seconds(60)
    private var layer = 0
    private var drawn = false

    init(terminal: Bool) { self.terminal = terminal }

    func update(layer: Int, of layers: Int, _ p: EROFSProgress) {
        let now = ContinuousClock.now
        let newLayer = layer != self.layer
        self.layer = layer
        let prefix = layers > 1 ? "layer \(layer)/\(layers) " : ""
        let amount = "\(p.entries) entries, \(Units.bytes(p.dataBytes))"
        if terminal {
            guard newLayer || now - last >= .milliseconds(100) else { return }
            last = now
            var line = prefix
            if let done = p.inputBytes, let total = p.inputTotal, total > 0 {
                let fraction = min(1, Double(done) / Double(total))
                let filled = Int(fraction * 30)
                line += "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: 30 - filled) + "]"
                line += String(format: " %3.0f%% ", fraction * 100)
            } else {
                line += "[" + ["|", "/", "-", "\\"][p.entries / 64 % 4] + "] "
            }
            Output.err("\r\u{1B}[K" + line + amount)
            drawn = true
        } else if newLayer {
            last = now
            if layers > 1 { Output.err("convert: layer \(layer)/\(layers)\n") }
        } else if now - last >= .seconds(10) {
            last = now
            Output.err("convert: \(prefix)\(amount)\n")
        }
    }

    func done() {
        if terminal && drawn { Output.err("\r\u{1B}[K") }
    }
}
