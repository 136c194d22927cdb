import ArgumentParser
import Foundation

/// A duration argument: `90s`, `15m`, `2h`, `7d`, `1h30m`.
struct DurationArgument: ExpressibleByArgument, Sendable {
    var seconds: Double
    init?(argument: String) {
        guard let seconds = Units.parseDuration(argument) else { return nil }
        self.seconds = seconds
    }
}

/// A size argument: `500M`, `10G`, `1.5GiB`, bytes.
struct SizeArgument: ExpressibleByArgument, Sendable {
    var bytes: UInt64
    init?(argument: String) {
        guard let bytes = Units.parseSize(argument) else { return nil }
        self.bytes = bytes
    }
}

/// `qemubox cache`.
struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "The EROFS layer cache (cache_dir): images of snapshot layers the shim converted.",
        subcommands: [List.self, Prune.self])

    /// `qemubox cache ls`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List the cached images, least recently used first.", aliases: ["list"])

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let configuration = try global.load()
            let images = LayerCacheReport(directory: configuration.cacheDirectory).list()
            switch global.format {
            case .json:
                Output.out(try Output.json(images))
            case .table:
                let now = Date()
                Output.out(Output.table(
                    ["KEY", "SIZE", "LAST USED", "IN USE", "SOURCE"],
                    images.map { image in
                        [image.key, Units.bytes(image.allocatedBytes),
                         Units.duration(now.timeIntervalSince(image.lastUsed)) + " ago",
                         image.openBy.isEmpty ? "-" : image.openBy.joined(separator: ","),
                         (image.source ?? "?") + (image.sourceExists ? "" : " (gone)")]
                    }))
                let total = images.reduce(UInt64(0)) { $0 + $1.allocatedBytes }
                Output.out("\(images.count) image(s), \(Units.bytes(total)) in \(configuration.cacheDirectory)\n")
            }
        }
    }

    /// `qemubox cache prune`.
    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Remove cached images: those whose snapshot is gone, and what the options ask for.",
            discussion: """
                Never removes an image a process holds open (a running VM's disk) or one handed out \
                in the last 10 minutes (a container may be starting with it). Without options only \
                images whose snapshot directory is gone and files of dead conversions go.
                """)

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Remove every image not in use.")
        var all = false

        @Option(help: ArgumentHelp("Remove images unused for longer than this (90s, 15m, 2h, 7d).", valueName: "duration"))
        var olderThan: DurationArgument?

        @Option(help: ArgumentHelp("Remove the least recently used images until the cache takes at most this (500M, 10G).",
                                   valueName: "size"))
        var maxSize: SizeArgument?

        @Flag(help: "Show what would be removed; remove nothing.")
        var dryRun = false

        func run() throws {
            let configuration = try global.load()
            var options = LayerCacheReport.PruneOptions()
            options.all = all
            options.olderThan = olderThan?.seconds
            options.maxBytes = maxSize?.bytes
            options.dryRun = dryRun
            let result = try LayerCacheReport(directory: configuration.cacheDirectory).prune(options)
            switch global.format {
            case .json:
                Output.out(try Output.json(result))
            case .table:
                Output.out(Output.table(
                    ["KEY", "SIZE", "ACTION", "REASON"],
                    result.decisions.map { d in
                        [d.key, Units.bytes(d.allocatedBytes),
                         d.removed ? (result.dryRun ? "would remove" : "removed") : "kept", d.reason]
                    }))
                let removed = result.decisions.filter(\.removed).count
                Output.out("\(result.dryRun ? "would remove" : "removed") \(removed), "
                    + "\(Units.bytes(result.freedBytes)) freed, \(Units.bytes(result.remainingBytes)) left\n")
            }
        }
    }
}
