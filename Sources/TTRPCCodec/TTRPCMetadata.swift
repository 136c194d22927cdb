/// Request metadata: an ordered multimap of lower-cased keys to string values,
/// sent as `ttrpc.Request.metadata` (`repeated KeyValue`).
///
/// Keys are case-insensitive and stored lower-cased, like Go ttrpc's `MD`.
public struct TTRPCMetadata: Hashable, Sendable, Sequence, ExpressibleByDictionaryLiteral {
    /// The entries in wire order.
    public private(set) var entries: [(key: String, value: String)] = []

    /// Creates empty metadata.
    public init() {}

    /// Creates metadata from `key: value` pairs.
    public init(dictionaryLiteral elements: (String, String)...) {
        for (key, value) in elements { append(value, for: key) }
    }

    /// Appends a value for a key.
    public mutating func append(_ value: String, for key: String) {
        entries.append((key.lowercased(), value))
    }

    /// Replaces all values of a key.
    public mutating func set(_ values: [String], for key: String) {
        let key = key.lowercased()
        entries.removeAll { $0.key == key }
        for value in values { entries.append((key, value)) }
    }

    /// All values of a key, in order.
    public func values(for key: String) -> [String] {
        let key = key.lowercased()
        return entries.filter { $0.key == key }.map(\.value)
    }

    /// The first value of a key.
    public subscript(key: String) -> String? {
        let key = key.lowercased()
        return entries.first { $0.key == key }?.value
    }

    /// Whether there are no entries.
    public var isEmpty: Bool { entries.isEmpty }

    public func makeIterator() -> some IteratorProtocol<(key: String, value: String)> {
        entries.makeIterator()
    }

    public static func == (lhs: TTRPCMetadata, rhs: TTRPCMetadata) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }
}

extension TTRPCMetadata {
    /// Metadata as received on the wire: keys are kept as the peer sent them
    /// (Go ttrpc lower-cases on `Set`, but a raw peer might not) and looked up
    /// case-insensitively.
    init(wire pairs: [Ttrpc_KeyValue]) {
        entries = pairs.map { ($0.key.lowercased(), $0.value) }
    }

    var wire: [Ttrpc_KeyValue] {
        entries.map { entry in
            var kv = Ttrpc_KeyValue()
            kv.key = entry.key
            kv.value = entry.value
            return kv
        }
    }
}
