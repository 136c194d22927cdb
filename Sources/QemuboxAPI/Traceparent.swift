/// W3C Trace Context's `traceparent` header as host and guest exchange it over ttrpc:
/// `00-<32 lower-case hex trace id>-<16 lower-case hex parent id>-<2 hex flags>`, ids not all zero.
public enum Traceparent {
    /// Whether `value` is a well-formed version-00 `traceparent`.
    public static func isValid(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "00" else { return false }
        let sizes = [2, 32, 16, 2]
        let hex = zip(parts, sizes).allSatisfy { part, size in
            part.utf8.count == size && part.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
        }
        return hex && parts[1].utf8.contains { $0 != 48 } && parts[2].utf8.contains { $0 != 48 }
    }

    /// Whether the caller sampled the trace (the flags' lowest bit); false when malformed.
    public static func isSampled(_ value: String) -> Bool {
        isValid(value) && (UInt8(value.suffix(2), radix: 16) ?? 0) & 1 == 1
    }
}
