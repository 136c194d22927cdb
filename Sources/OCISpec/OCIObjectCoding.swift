#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A coding key for arbitrary object member names.
struct AnyCodingKey: CodingKey, Hashable {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue) }
}

/// Decodes one JSON object member by member, remembering which members were
/// consumed so every other member (unknown or future fields, and known fields
/// explicitly set to `null`) ends up in the object's `extensions` verbatim.
struct OCIObjectReader {
    private let container: KeyedDecodingContainer<AnyCodingKey>
    private var consumed: Set<String> = []

    private let present: Set<String>

    init(_ decoder: any Decoder) throws {
        container = try decoder.container(keyedBy: AnyCodingKey.self)
        present = Set(container.allKeys.map(\.stringValue))
    }

    /// The member `key` decoded as `T`, or nil when absent or `null` (a `null`
    /// stays in the extensions so it is written back).
    mutating func decode<T: Decodable>(_ key: String) throws -> T? {
        let codingKey = AnyCodingKey(key)
        guard present.contains(key) else { return nil }
        do {
            guard let value = try container.decodeIfPresent(T.self, forKey: codingKey) else { return nil }
            consumed.insert(key)
            return value
        } catch let error as DecodingError {
            throw error
        } catch {
            // Foundation reports a number that does not fit the field's type
            // with an internal error and no path; attach this member's path.
            throw DecodingError.dataCorrupted(.init(
                codingPath: container.codingPath + [codingKey],
                debugDescription: "number out of range for \(T.self)", underlyingError: error))
        }
    }

    /// The member `key` decoded as `T`; throws `keyNotFound` when absent or null.
    mutating func require<T: Decodable>(_ key: String) throws -> T {
        let codingKey = AnyCodingKey(key)
        guard let value: T = try decode(key) else {
            throw DecodingError.keyNotFound(codingKey, .init(
                codingPath: container.codingPath, debugDescription: "required"))
        }
        return value
    }

    /// Every member not consumed, as raw JSON.
    func extensions() throws -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for key in present where !consumed.contains(key) {
            out[key] = try container.decode(JSONValue.self, forKey: AnyCodingKey(key))
        }
        return out
    }
}

/// Encodes one JSON object: modelled members first, then the extensions
/// (skipping any whose name a modelled member already wrote).
struct OCIObjectWriter {
    private var container: KeyedEncodingContainer<AnyCodingKey>
    private var written: Set<String> = []

    init(_ encoder: any Encoder) {
        container = encoder.container(keyedBy: AnyCodingKey.self)
    }

    /// Writes `value` under `key` unless it is nil.
    mutating func encode<T: Encodable>(_ value: T?, _ key: String) throws {
        guard let value else { return }
        written.insert(key)
        try container.encode(value, forKey: AnyCodingKey(key))
    }

    /// Writes the extensions not shadowed by a modelled member.
    mutating func finish(_ extensions: [String: JSONValue]) throws {
        for (key, value) in extensions where !written.contains(key) {
            try container.encode(value, forKey: AnyCodingKey(key))
        }
    }
}

/// Common shape of every modelled JSON object: Codable, Sendable, Equatable,
/// with a verbatim store of the members it does not model.
public protocol OCIObject: Codable, Sendable, Hashable {
    /// Members of this JSON object that the model has no property for (unknown
    /// or future fields, vendor extensions, known fields given as `null`), kept
    /// verbatim and written back on encoding.
    var extensions: [String: JSONValue] { get set }
}

/// JSON entry points shared by all documents.
public enum OCIJSON {
    /// Decodes `T` from JSON bytes, mapping failures to ``OCISpecError`` with paths.
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws(OCISpecError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw OCISpecError(decoding: error)
        }
    }

    /// Encodes `value` to JSON: keys sorted (deterministic output), slashes
    /// unescaped, optionally indented.
    public static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws(OCISpecError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty
            ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
            : [.sortedKeys, .withoutEscapingSlashes]
        do {
            return try encoder.encode(value)
        } catch {
            throw OCISpecError(.encodingFailed, path: "", "\(error)")
        }
    }
}

extension OCIObject {
    /// Decodes this object from JSON bytes.
    public init(json data: Data) throws(OCISpecError) {
        self = try OCIJSON.decode(Self.self, from: data)
    }

    /// This object as JSON bytes (sorted keys; every extension kept).
    public func jsonData(pretty: Bool = false) throws(OCISpecError) -> Data {
        try OCIJSON.encode(self, pretty: pretty)
    }
}
