import Foundation

/// An independent, test-only JSON reader used as the oracle for round trips:
/// it keeps every number's literal text, so comparisons are exact and do not
/// depend on the library's own decoding.
indirect enum RefJSON: Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([RefJSON])
    case object([String: RefJSON])

    static func == (lhs: RefJSON, rhs: RefJSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)): return a == b
        case let (.number(a), .number(b)): return numbersEqual(a, b)
        default: return false
        }
    }

    /// Integers compare by exact digits; other numbers by their Double value.
    static func numbersEqual(_ a: String, _ b: String) -> Bool {
        let isInteger = { (s: String) in !s.contains(where: { ".eE".contains($0) }) }
        if isInteger(a) && isInteger(b) {
            let canon = { (s: String) in s == "-0" ? "0" : s }
            return canon(a) == canon(b)
        }
        guard let x = Double(a), let y = Double(b) else { return false }
        return x == y
    }

    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let n): return n
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "[" + a.map(\.description).joined(separator: ",") + "]"
        case .object(let o):
            return "{" + o.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }
    }

    /// Paths where two trees differ (for readable failures).
    static func differences(_ a: RefJSON, _ b: RefJSON, path: String = "$") -> [String] {
        switch (a, b) {
        case let (.object(x), .object(y)):
            var out: [String] = []
            for key in Set(x.keys).union(y.keys).sorted() {
                switch (x[key], y[key]) {
                case let (l?, r?): out += differences(l, r, path: path + "." + key)
                case (nil, _): out.append("\(path).\(key): missing on the left")
                case (_, nil): out.append("\(path).\(key): missing on the right")
                }
            }
            return out
        case let (.array(x), .array(y)) where x.count == y.count:
            return zip(x, y).enumerated().flatMap { differences($1.0, $1.1, path: "\(path)[\($0)]") }
        default:
            return a == b ? [] : ["\(path): \(a) != \(b)"]
        }
    }

    struct ParseError: Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ data: Data) throws -> RefJSON {
        var parser = Parser(bytes: Array(data))
        parser.skipSpace()
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == parser.bytes.count else { throw ParseError(description: "trailing bytes") }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func expect(_ literal: String) throws {
            for byte in literal.utf8 {
                guard index < bytes.count, bytes[index] == byte else { throw ParseError(description: "expected \(literal)") }
                index += 1
            }
        }

        mutating func value() throws -> RefJSON {
            guard index < bytes.count else { throw ParseError(description: "unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                index += 1
                var items: [RefJSON] = []
                skipSpace()
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value())
                    skipSpace()
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    try expect("]")
                    return .array(items)
                }
            case UInt8(ascii: "{"):
                index += 1
                var members: [String: RefJSON] = [:]
                skipSpace()
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                while true {
                    skipSpace()
                    let key = try string()
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    members[key] = try value()
                    skipSpace()
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    try expect("}")
                    return .object(members)
                }
            default:
                let start = index
                while index < bytes.count, "+-0123456789.eE".utf8.contains(bytes[index]) { index += 1 }
                guard index > start else { throw ParseError(description: "unexpected byte \(bytes[index])") }
                return .number(String(decoding: bytes[start..<index], as: UTF8.self))
            }
        }

        mutating func string() throws -> String {
            try expect("\"")
            var scalars: [UInt8] = []
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                if bytes[index] == UInt8(ascii: "\\") {
                    index += 1
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "n"): scalars.append(0x0A)
                    case UInt8(ascii: "t"): scalars.append(0x09)
                    case UInt8(ascii: "r"): scalars.append(0x0D)
                    case UInt8(ascii: "b"): scalars.append(0x08)
                    case UInt8(ascii: "f"): scalars.append(0x0C)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800..<0xDC00).contains(code) {
                            try expect("\\u")
                            let low = try hex4()
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw ParseError(description: "bad \\u") }
                        scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: scalars.append(escape)
                    }
                } else {
                    scalars.append(bytes[index])
                    index += 1
                }
            }
            try expect("\"")
            return String(decoding: scalars, as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard index + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16)
            else { throw ParseError(description: "bad hex") }
            index += 4
            return code
        }
    }
}
