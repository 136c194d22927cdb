import ArgumentParser
import Foundation

/// `qemubox check`.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "What this host can do for qemubox, and why: each line ok, warn or fail, with the fix.",
        discussion: "Exits 1 when any line fails.")

    @OptionGroup var global: GlobalOptions

    /// The JSON document.
    struct Report: Codable {
        var lines: [CheckLine]
        var summary: [String: Int]
    }

    func run() throws {
        let loaded = global.loadReporting()
        let lines = HostCheck(configuration: loaded.configuration, configurationSource: loaded.source,
                              configurationError: loaded.error).run()
        var summary: [String: Int] = [:]
        for status in CheckLine.Status.allCases { summary[status.rawValue] = lines.filter { $0.status == status }.count }
        switch global.format {
        case .json: Output.out(try Output.json(Report(lines: lines, summary: summary)))
        case .table: Output.out(Self.render(lines))
        }
        if let failing = summary["fail"], failing > 0 {
            throw OperatorError(.checkFailed, "\(failing) check(s) fail")
        }
    }

    /// CHECK, STATUS and DETAIL columns; the fix of a warn or fail line on the line below it.
    static func render(_ lines: [CheckLine]) -> String {
        let width = max(5, lines.map(\.check.count).max() ?? 0) + 3
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
        var text = pad("CHECK", width) + pad("STATUS", 9) + "DETAIL\n"
        for line in lines {
            text += pad(line.check, width) + pad(line.status.rawValue, 9) + line.detail + "\n"
            if let fix = line.fix, line.status != .ok {
                text += String(repeating: " ", count: width + 9) + "fix: " + fix + "\n"
            }
        }
        return text
    }
}
