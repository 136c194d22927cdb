/// Builds small tar archives byte by byte, including malformed ones, for the
/// hostile-input tests.
struct TarBuilder {
    var bytes: [UInt8] = []

    static func octal(_ value: UInt64, _ width: Int) -> [UInt8] {
        let digits = Array(String(value, radix: 8).utf8)
        return [UInt8](repeating: 0x30, count: max(0, width - 1 - digits.count)) + digits + [0]
    }

    /// Appends a ustar header (and data with padding).
    mutating func entry(_ name: String, type: Character = "0", data: [UInt8] = [], link: String = "",
                        size: UInt64? = nil, mode: UInt64 = 0o644, corruptChecksum: Bool = false) {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ field: [UInt8], _ at: Int) { for (i, b) in field.enumerated() { h[at + i] = b } }
        put(Array(name.utf8.prefix(100)), 0)
        put(Self.octal(mode, 8), 100)
        put(Self.octal(0, 8), 108)
        put(Self.octal(0, 8), 116)
        put(Self.octal(size ?? UInt64(data.count), 12), 124)
        put(Self.octal(1_700_000_000, 12), 136)
        h[156] = type.asciiValue ?? 0x30
        put(Array(link.utf8.prefix(100)), 157)
        put(Array("ustar\0".utf8), 257)
        put(Array("00".utf8), 263)
        put([UInt8](repeating: 0x20, count: 8), 148)
        var sum = h.reduce(0) { $0 + UInt64($1) }
        if corruptChecksum { sum += 1 }
        put(Self.octal(sum, 7) + [0x20], 148)
        bytes += h
        bytes += data
        bytes += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    /// A PAX extended header applying `records` to the next entry.
    mutating func pax(_ records: [(String, String)]) {
        var body: [UInt8] = []
        for (k, v) in records {
            let payload = " \(k)=\(v)\n"
            var length = payload.utf8.count + 1
            while String(length).utf8.count + payload.utf8.count != length { length += 1 }
            body += Array("\(length)\(payload)".utf8)
        }
        entry("PaxHeader", type: "x", data: body)
    }

    mutating func end() { bytes += [UInt8](repeating: 0, count: 1024) }
}
