#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation

/// How a command prints its result: a human table (the default) or JSON.
public enum OutputFormat: String, CaseIterable, Sendable, ExpressibleByArgument {
    /// Aligned columns with a header, as `ctr` prints.
    case table
    /// One JSON document (snake_case keys, ISO 8601 dates) on stdout.
    case json
}

/// Writing to the standard streams without buffering (a followed log must appear at once).
enum Output {
    /// Writes `text` to stdout.
    static func out(_ text: String) { write(1, Array(text.utf8)) }
    /// Writes `text` to stderr.
    static func err(_ text: String) { write(2, Array(text.utf8)) }

    /// Writes all of `bytes` to `fd` (a closed reader ends the writes silently).
    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    /// `value` as pretty JSON with sorted snake_case keys and ISO 8601 dates, ending in a newline.
    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self) + "\n"
        } catch {
            throw OperatorError(.io, "cannot encode the result as JSON: \(error)")
        }
    }

    /// Left-aligned columns separated by three spaces, headers first.
    static func table(_ headers: [String], _ rows: [[String]]) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var text = ""
            for (i, cell) in cells.enumerated() {
                let last = i == cells.count - 1
                text += last ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 3)
            }
            return text + "\n"
        }
        return line(headers) + rows.map(line).joined()
    }
}

/// Human renderings and parsers of sizes and durations.
enum Units {
    /// `1536` → `1.5 KiB`; bytes below 1 KiB as `512 B`.
    static func bytes(_ value: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var amount = Double(value)
        var unit = 0
        while amount >= 1024 && unit < units.count - 1 {
            amount /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : String(format: amount < 10 ? "%.1f" : "%.0f", amount) + " " + units[unit]
    }

    /// `4000` seconds → `1h6m`; under a minute `42s`; days as `3d4h`.
    static func duration(_ seconds: Double) -> String {
        let s = max(0, Int(seconds.rounded(.down)))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        if s < 86400 { return "\(s / 3600)h\(s % 3600 / 60)m" }
        return "\(s / 86400)d\(s % 86400 / 3600)h"
    }

    /// Parses `90s`, `15m`, `2h`, `7d`, `1h30m` or a plain number of seconds.
    static func parseDuration(_ text: String) -> Double? {
        if let plain = Double(text), plain >= 0 { return plain }
        var total = 0.0
        var number = ""
        var parsedAny = false
        for character in text {
            if character.isNumber || character == "." {
                number.append(character)
                continue
            }
            let scale: Double
            switch character {
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            case "d": scale = 86400
            case "w": scale = 7 * 86400
            default: return nil
            }
            guard let value = Double(number) else { return nil }
            total += value * scale
            number = ""
            parsedAny = true
        }
        return parsedAny && number.isEmpty ? total : nil
    }

    /// Parses `500M`, `10G`, `1.5GiB`, `2T` or plain bytes; K/M/G/T are powers of 1024
    /// with or without `iB`/`B`.
    static func parseSize(_ text: String) -> UInt64? {
        var digits = text.trimmingCharacters(in: .whitespaces)
        var unit = ""
        while let last = digits.last, last.isLetter {
            unit = String(last) + unit
            digits.removeLast()
        }
        guard let value = Double(digits.trimmingCharacters(in: .whitespaces)), value >= 0 else { return nil }
        let scale: Double
        switch unit.uppercased() {
        case "", "B": scale = 1
        case "K", "KB", "KIB": scale = 1024
        case "M", "MB", "MIB": scale = 1_048_576
        case "G", "GB", "GIB": scale = 1_073_741_824
        case "T", "TB", "TIB": scale = 1_099_511_627_776
        default: return nil
        }
        let bytes = value * scale
        guard bytes < Double(UInt64.max) else { return nil }
        return UInt64(bytes)
    }
}
