import Foundation

/// A JSON value, as CNI configurations and results carry it: plugin configurations are kept
/// as values of this type so that fields CNIRunner does not model pass through to the plugin
/// unchanged.
///
/// Integers are kept apart from other numbers so that they round-trip exactly.
public enum CNIJSON: Sendable, Hashable, Codable {
    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number without fraction or exponent that fits 64 bits.
    case int(Int64)
    /// Any other number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([CNIJSON])
    /// An object.
    case object([String: CNIJSON])

    /// Nesting deeper than this is rejected when parsing (hostile input).
    public static let maximumDepth = 64

    /// Decodes any JSON value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([CNIJSON].self) {
            self = .array(value)
        } else if let value = try? container.decode([String: CNIJSON].self) {
            self = .object(value)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    /// Encodes the value as JSON.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses `data` as a JSON document. Throws ``CNIJSONError`` for invalid JSON or nesting
    /// deeper than ``maximumDepth``.
    public static func parse(_ data: Data) throws(CNIJSONError) -> CNIJSON {
        if let depthProblem = nestingProblem(data) { throw CNIJSONError(description: depthProblem) }
        do {
            return try JSONDecoder().decode(CNIJSON.self, from: data)
        } catch {
            throw CNIJSONError(description: "not valid JSON (\(Self.describe(error)))")
        }
    }

    /// The value serialized as compact JSON with sorted keys.
    public func serialized() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a CNIJSON cannot fail except for non-finite doubles, which parsing never produces.
        return (try? encoder.encode(self)) ?? Data("null".utf8)
    }

    /// The object's members, or nil if this is not an object.
    public var objectValue: [String: CNIJSON]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The array's elements, or nil if this is not an array.
    public var arrayValue: [CNIJSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The string, or nil if this is not a string.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The boolean, or nil if this is not a boolean.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The integer, or nil if this is not an integral number.
    public var intValue: Int? {
        switch self {
        case .int(let value): return Int(exactly: value)
        case .double(let value): return Int(exactly: value)
        default: return nil
        }
    }

    /// A short name of the value's type, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Scans for nesting deeper than ``maximumDepth`` (outside strings) before decoding, so
    /// hostile input cannot drive the recursive decoder deep.
    static func nestingProblem(_ data: Data) -> String? {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in data {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maximumDepth { return "JSON nested deeper than \(maximumDepth) levels" }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth -= 1
            default: break
            }
        }
        return nil
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): return context.debugDescription
        case DecodingError.typeMismatch(_, let context): return context.debugDescription
        default: return String(describing: error)
        }
    }
}

/// Why a document is not acceptable JSON.
public struct CNIJSONError: Error, CustomStringConvertible, Sendable {
    /// The reason.
    public let description: String
}

extension CNIJSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    /// A string value.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer value.
    public init(integerLiteral value: Int64) { self = .int(value) }
    /// A boolean value.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// An array value.
    public init(arrayLiteral elements: CNIJSON...) { self = .array(elements) }
    /// An object value (a later duplicate key wins).
    public init(dictionaryLiteral elements: (String, CNIJSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    /// `null`.
    public init(nilLiteral: ()) { self = .null }
}
