import EROFSImage
import Foundation

/// A one-line progress bar on stderr, redrawn at most ten times a second.
final class ProgressBar {
    let enabled: Bool
    private var last = Date.distantPast
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ p: EROFSProgress) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(last) >= 0.1 else { return }
        last = now
        let mib = Double(p.dataBytes) / 1_048_576
        var line: String
        if let done = p.inputBytes, let total = p.inputTotal, total > 0 {
            let fraction = min(1, Double(done) / Double(total))
            let width = 30
            let filled = Int(fraction * Double(width))
            line = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
            line += String(format: " %3.0f%%", fraction * 100)
        } else {
            let spinner = ["|", "/", "-", "\\"][p.entries / 64 % 4]
            line = "[\(spinner)]"
        }
        line += String(format: " %d entries, %.1f MiB", p.entries, mib)
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
        drawn = true
    }

    func done() {
        if enabled && drawn { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
