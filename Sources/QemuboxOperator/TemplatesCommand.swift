import ArgumentParser
import Foundation

/// `qemubox templates`.
struct TemplatesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "templates",
        abstract: "The warm-start template store (template_dir): saved guests VMs restore from.",
        subcommands: [List.self, Prune.self])

    /// `qemubox templates ls`.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List the templates: key, state, size, creation time, memory holder, clones.",
            aliases: ["list"])

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let configuration = try global.load()
            let templates = TemplateReport(directory: configuration.templateDirectory).list()
            switch global.format {
            case .json:
                Output.out(try Output.json(templates))
            case .table:
                let now = Date()
                Output.out(Output.table(
                    ["KEY", "STATE", "SIZE", "MEMORY", "VCPUS", "CREATED", "HOLDER", "CLONES"],
                    templates.map { t in
                        [t.key + (t.directory.hasSuffix(t.key) ? "" : " (" + (t.directory as NSString).lastPathComponent + ")"),
                         t.state, Units.bytes(t.allocatedBytes), t.memoryMiB.map { "\($0) MiB" } ?? "-",
                         t.vcpus.map(String.init) ?? "-", Units.duration(now.timeIntervalSince(t.created)) + " ago",
                         t.memoryHolder ?? "-",
                         "\(t.clones.count)"]
                    }))
            }
        }
    }

    /// `qemubox templates prune`.
    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Remove incomplete and stale templates (with --all: every one not locked by a running save).")

        @OptionGroup var global: GlobalOptions

        @Flag(help: "Remove complete, current templates too.")
        var all = false

        @Flag(help: "Show what would be removed; remove nothing.")
        var dryRun = false

        func run() throws {
            let configuration = try global.load()
            let result = try TemplateReport(directory: configuration.templateDirectory).prune(all: all, dryRun: dryRun)
            switch global.format {
            case .json:
                Output.out(try Output.json(result))
            case .table:
                Output.out(Output.table(
                    ["KEY", "SIZE", "ACTION", "REASON"],
                    result.decisions.map { d in
                        [(d.directory as NSString).lastPathComponent, Units.bytes(d.allocatedBytes),
                         d.removed ? (result.dryRun ? "would remove" : "removed") : "kept", d.reason]
                    }))
                let removed = result.decisions.filter(\.removed).count
                Output.out("\(result.dryRun ? "would remove" : "removed") \(removed), \(Units.bytes(result.freedBytes)) freed\n")
            }
        }
    }
}
