import ArgumentParser
import Foundation
import QemuboxKit
import QemuboxShim

/// The operator command `qemubox`: what this host can do (`check`), the running VMs (`ps`),
/// their logs (`console`, `logs`), the layer cache and template store (`cache`, `templates`),
/// and EROFS images (`convert`, `inspect`).
///
/// ```swift
/// exit(await QemuboxOperator.main(Array(CommandLine.arguments.dropFirst())))
/// ```
public enum QemuboxOperator {
    /// Runs the command line `arguments` (without the program name) and returns the exit
    /// status: 0 success, 1 failure (for `check`: a line fails), 2 usage error.
    public static func main(_ arguments: [String]) async -> Int32 {
        do {
            var command = try QemuboxCommand.parseAsRoot(arguments)
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
            return 0
        } catch let error as OperatorError {
            Output.err(error.description + "\n")
            return error.exitStatus
        } catch {
            let code = QemuboxCommand.exitCode(for: error)
            let message = QemuboxCommand.fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { Output.out(message + "\n") }
                return 0
            }
            if !message.isEmpty { Output.err(message + "\n") }
            // ArgumentParser's usage errors are EX_USAGE (64); ctr and nerdctl exit 2.
            return code == .validationFailure ? 2 : code.rawValue
        }
    }
}

/// The root command: subcommands only.
struct QemuboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemubox",
        abstract: "Operate qemubox on this host: what it can do, its VMs, its caches and EROFS images.",
        discussion: """
            --config and --format may be given before or after the subcommand. Exit status: 0 success, \
            1 failure (check: some line fails), 2 usage error.
            """,
        version: QemuboxShim.version,
        subcommands: [CheckCommand.self, PsCommand.self, ConsoleCommand.self, LogsCommand.self, CacheCommand.self,
                      TemplatesCommand.self, ConvertCommand.self, InspectCommand.self, MetricsCommand.self])

    @OptionGroup var global: GlobalOptions
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The configuration file (default: $QEMUBOX_CONFIG, else /etc/qemubox/config.toml; a missing default file means the defaults).",
        valueName: "path"))
    var config: String?

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    /// The configuration, where it came from, and why it could not be read (then the defaults).
    func loadReporting(environment: [String: String] = ProcessInfo.processInfo.environment)
        -> (configuration: QemuboxConfiguration, source: String, error: String?)
    {
        var environment = environment
        if let config { environment[QemuboxConfiguration.environmentVariable] = config }
        let named = environment[QemuboxConfiguration.environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        let path = named ?? QemuboxConfiguration.defaultPath
        do {
            let configuration = try QemuboxConfiguration.load(environment: environment)
            let source = FileManager.default.fileExists(atPath: path) ? path : "\(path) does not exist: the defaults"
            return (configuration, source, nil)
        } catch {
            return (QemuboxConfiguration(), path, (error as? QemuboxError)?.message ?? "\(error)")
        }
    }

    /// The configuration, or an error naming the file.
    func load() throws -> QemuboxConfiguration {
        let loaded = loadReporting()
        if let error = loaded.error { throw OperatorError(.invalidConfiguration, error) }
        return loaded.configuration
    }
}
