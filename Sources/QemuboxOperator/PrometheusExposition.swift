/// Prometheus text exposition (format 0.0.4) as `qemubox metrics` merges it: each shim's
/// scrape is split into metric families, every sample gets the shim's `namespace` and `id`
/// labels, and the families of all shims are written once each, their samples together (the
/// format wants a family's lines in one group).
///
/// Only what a metrics registry writes is understood: `# HELP` and `# TYPE` lines, and
/// samples `name{labels} value [timestamp]`. Anything else (other comments, blank lines) is
/// dropped; a sample line that does not parse is dropped and counted.
struct PrometheusExposition: Sendable {
    struct Family: Sendable {
        var help: String?
        var type: String?
        var samples: [String] = []
    }

    /// Families in first-seen order.
    private(set) var names: [String] = []
    private(set) var families: [String: Family] = [:]
    /// Sample lines dropped because they did not parse.
    private(set) var malformed = 0

    /// Adds `text`, with `labels` put first on every sample.
    mutating func add(_ text: Substring, labels: [(String, String)]) {
        var current: String?
        let prefix = labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") {
                let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
                guard words.count >= 3, words[1] == "HELP" || words[1] == "TYPE" else { continue }
                let name = String(words[2])
                guard Self.isMetricName(name) else { continue }
                let value = words.count > 3 ? String(words[3]) : ""
                family(name) { family in
                    if words[1] == "HELP" { family.help = family.help ?? value } else { family.type = family.type ?? value }
                }
                current = name
                continue
            }
            let nameEnd = line.firstIndex { $0 == "{" || $0 == " " } ?? line.endIndex
            let name = String(line[..<nameEnd])
            guard Self.isMetricName(name), nameEnd < line.endIndex else { malformed += 1; continue }
            var rest = line[nameEnd...]
            var sample = name + "{" + prefix
            if rest.first == "{" {
                guard let close = Self.closingBrace(rest) else { malformed += 1; continue }
                let inner = rest[rest.index(after: rest.startIndex)..<close]
                if !inner.isEmpty { sample += (prefix.isEmpty ? "" : ",") + inner }
                rest = rest[rest.index(after: close)...]
            }
            guard rest.first == " ", Self.isValue(rest.dropFirst()) else { malformed += 1; continue }
            sample += "}" + rest
            // A histogram's or summary's `_bucket`/`_sum`/`_count` belong to the family declared above.
            let owner = current.flatMap { name.hasPrefix($0) ? $0 : nil } ?? name
            family(owner) { $0.samples.append(sample) }
        }
    }

    /// The merged exposition.
    var text: String {
        var out = ""
        for name in names {
            guard let family = families[name] else { continue }
            if let help = family.help { out += "# HELP \(name) \(help)\n" }
            if let type = family.type { out += "# TYPE \(name) \(type)\n" }
            for sample in family.samples { out += sample + "\n" }
        }
        return out
    }

    private mutating func family(_ name: String, _ change: (inout Family) -> Void) {
        if families[name] == nil {
            families[name] = Family()
            names.append(name)
        }
        change(&families[name, default: Family()])
    }

    /// `VALUE [TIMESTAMP]`: a float (`+Inf`, `-Inf`, `NaN` included), then milliseconds.
    static func isValue(_ text: Substring) -> Bool {
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        guard (1...2).contains(words.count), Double(words[0]) != nil else { return false }
        return words.count == 1 || Int64(words[1]) != nil
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    static func isMetricName(_ name: String) -> Bool {
        guard let first = name.utf8.first else { return false }
        func letter(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c == 95 || c == 58 }
        return letter(first) && name.utf8.allSatisfy { letter($0) || ($0 >= 48 && $0 <= 57) }
    }

    /// The `}` that closes a label set starting at `text`'s `{`, skipping quoted values.
    static func closingBrace(_ text: Substring) -> Substring.Index? {
        var inQuotes = false
        var escaped = false
        for index in text.indices.dropFirst() {
            let c = text[index]
            if escaped { escaped = false; continue }
            switch c {
            case "\\" where inQuotes: escaped = true
            case "\"": inQuotes.toggle()
            case "}" where !inQuotes: return index
            default: break
            }
        }
        return nil
    }

    /// A label value escaped for the text format.
    static func escape(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
