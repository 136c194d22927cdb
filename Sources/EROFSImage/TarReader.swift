/// One tar entry's header, with PAX / GNU extensions applied.
struct TarEntry {
    var path: [UInt8] = []
    var linkName: [UInt8] = []
    var type: UInt8 = 0x30
    var mode: UInt32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var mtime: Int64 = 0
    var mtimeNsec: UInt32 = 0
    /// Bytes stored in the archive for this entry (after any sparse map).
    var storedSize: UInt64 = 0
    /// Logical file size.
    var size: UInt64 = 0
    /// Data segments for sparse files (logical ranges stored back to back).
    var sparse: [Range<UInt64>]?
    var devMajor: UInt32 = 0
    var devMinor: UInt32 = 0
    var xattrs: [([UInt8], [UInt8])] = []
    var headerOffset: UInt64 = 0

    var displayPath: String { String(decoding: path, as: UTF8.self) }
}

/// A streaming tar parser (ustar, GNU long names and sparse files, PAX) that
/// treats its input as hostile: every field is validated, every size bounded.
final class TarReader {
    let input: StreamReader
    let limits: EROFSTarLimits
    /// Stored bytes of the current entry not yet consumed.
    private(set) var remaining: UInt64 = 0
    private var padding: UInt64 = 0
    private var entries = 0
    private var ended = false

    init(input: StreamReader, limits: EROFSTarLimits) {
        self.input = input
        self.limits = limits
    }

    private func fail(_ message: String, at offset: UInt64) -> EROFSError {
        EROFSError(.corruptTar, "\(input.name): \(message) (header at byte \(offset))")
    }

    /// Reads the next entry header, or nil at the end of the archive. The previous
    /// entry's unread data is skipped.
    func next() throws -> TarEntry? {
        if ended { return nil }
        try input.skip(remaining + padding, what: "entry data")
        remaining = 0
        padding = 0
        var pax: [([UInt8], [UInt8])] = []
        var longName: [UInt8]?
        var longLink: [UInt8]?
        while true {
            let offset = input.position
            guard let block = try input.readExactly(512, what: "a header") else {
                throw fail("archive ends without an end-of-archive marker", at: offset)
            }
            if block.allSatisfy({ $0 == 0 }) {
                // End of archive: a second zero block (or nothing) follows.
                if let second = try input.readExactly(512, what: "the end-of-archive marker"), !second.allSatisfy({ $0 == 0 }) {
                    throw fail("garbage after a zero block", at: offset)
                }
                ended = true
                return nil
            }
            try verifyChecksum(block, at: offset)
            entries += 1
            guard entries <= limits.maxEntries else {
                throw EROFSError(.limitExceeded, "\(input.name): more than \(limits.maxEntries) entries")
            }
            let type = block[156]
            let size = try number(block, 124, 12, at: offset)
            switch type {
            case 0x78, 0x67, 0x4C, 0x4B:   // 'x' PAX, 'g' global PAX, 'L' GNU long name, 'K' GNU long link
                guard size <= UInt64(limits.maxMetadataRecord) else {
                    throw EROFSError(.limitExceeded, "\(input.name): metadata record of \(size) bytes at byte \(offset)")
                }
                let data = try input.readExactly(Int(size), what: "a metadata record") ?? []
                guard data.count == Int(size) else { throw fail("truncated metadata record", at: offset) }
                try input.skip(UInt64((512 - Int(size) % 512) % 512), what: "record padding")
                switch type {
                case 0x78: pax += try parsePAX(data, at: offset)
                case 0x4C: longName = cString(data)
                case 0x4B: longLink = cString(data)
                default: break   // global headers carry nothing we keep
                }
                continue
            default:
                break
            }
            var entry = TarEntry()
            entry.headerOffset = offset
            entry.type = type == 0 ? 0x30 : type
            let isUstar = Array(block[257..<263]) == Array("ustar\0".utf8)
            var name = cString(Array(block[0..<100]))
            if isUstar {
                let prefix = cString(Array(block[345..<500]))
                if !prefix.isEmpty { name = prefix + [0x2F] + name }
            }
            entry.path = longName ?? name
            entry.linkName = longLink ?? cString(Array(block[157..<257]))
            entry.mode = UInt32(truncatingIfNeeded: try number(block, 100, 8, at: offset))
            entry.uid = UInt32(truncatingIfNeeded: try number(block, 108, 8, at: offset))
            entry.gid = UInt32(truncatingIfNeeded: try number(block, 116, 8, at: offset))
            entry.mtime = Int64(truncatingIfNeeded: try number(block, 136, 12, at: offset))
            entry.storedSize = size
            entry.size = size
            if entry.type == 0x33 || entry.type == 0x34 {
                entry.devMajor = UInt32(truncatingIfNeeded: try number(block, 329, 8, at: offset))
                entry.devMinor = UInt32(truncatingIfNeeded: try number(block, 337, 8, at: offset))
            }
            if entry.type == 0x53 {   // 'S' old GNU sparse
                entry.size = try number(block, 483, 12, at: offset)
                var map: [Range<UInt64>] = []
                try appendSparse(block, from: 386, count: 4, into: &map, at: offset)
                var extended = block[482] != 0
                while extended {
                    guard let ext = try input.readExactly(512, what: "a sparse header") else { throw fail("truncated sparse header", at: offset) }
                    try appendSparse(ext, from: 0, count: 21, into: &map, at: offset)
                    extended = ext[504] != 0
                    guard map.count < 1 << 20 else { throw EROFSError(.limitExceeded, "\(input.name): sparse map too long") }
                }
                entry.sparse = map
                entry.type = 0x30
            }
            try applyPAX(pax, to: &entry)
            guard entry.path.count <= limits.maxPathLength, entry.linkName.count <= limits.maxPathLength else {
                throw EROFSError(.limitExceeded, "\(input.name): entry \(entry.displayPath.prefix(100)): path too long")
            }
            let hasData = entry.type == 0x30 || entry.type == 0x37
            if hasData {
                guard entry.size <= limits.maxFileSize, entry.storedSize <= limits.maxFileSize else {
                    throw EROFSError(.limitExceeded, "\(input.name): entry \(entry.displayPath): size \(entry.size) exceeds the limit \(limits.maxFileSize)")
                }
            }
            remaining = entry.storedSize
            padding = (512 - entry.storedSize % 512) % 512
            if hasData, let map = entry.sparse {
                try validateSparse(map, entry: entry)
            } else if hasData, entry.sparse == nil, pendingSparseV1 {
                pendingSparseV1 = false
                try readSparseV1Map(&entry)
            }
            return entry
        }
    }

    private var pendingSparseV1 = false

    /// Reads up to `buffer.count` bytes of the current entry's stored data.
    func readData(into buffer: UnsafeMutableRawBufferPointer, entry: String) throws -> Int {
        let want = Int(min(UInt64(buffer.count), remaining))
        if want == 0 { return 0 }
        let n = try input.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        guard n == want else { throw EROFSError(.corruptTar, "\(input.name): entry \(entry): data truncated") }
        remaining -= UInt64(n)
        return n
    }

    // MARK: fields

    private func cString(_ bytes: [UInt8]) -> [UInt8] {
        if let nul = bytes.firstIndex(of: 0) { return Array(bytes[..<nul]) }
        return bytes
    }

    private func verifyChecksum(_ block: [UInt8], at offset: UInt64) throws {
        let stored: UInt64
        do {
            stored = try number(block, 148, 8, at: offset)
        } catch {
            throw fail("header checksum field is not a number (not a tar, or corrupt)", at: offset)
        }
        var unsigned: UInt64 = 0
        var signed: Int64 = 0
        for (i, b) in block.enumerated() {
            let v = (148..<156).contains(i) ? 0x20 : b
            unsigned += UInt64(v)
            signed += Int64(Int8(bitPattern: v))
        }
        guard stored == unsigned || Int64(bitPattern: stored) == signed else {
            throw fail("header checksum mismatch (not a tar, or corrupt)", at: offset)
        }
    }

    /// Octal (NUL/space padded) or GNU base-256 numbers.
    private func number(_ block: [UInt8], _ start: Int, _ length: Int, at offset: UInt64) throws -> UInt64 {
        let field = block[start..<(start + length)]
        if let first = field.first, first & 0x80 != 0 {
            // GNU base-256: 0x80 positive, 0xFF negative (two's complement; only
            // meaningful for times, a negative size fails the size limit).
            guard first == 0x80 || first == 0xFF else { throw fail("bad base-256 number", at: offset) }
            var value: UInt64 = first == 0xFF ? UInt64.max : 0
            for b in field.dropFirst() {
                if first == 0x80 { guard value >> 56 == 0 else { throw fail("base-256 number overflows", at: offset) } }
                value = value << 8 | UInt64(b)
            }
            return value
        }
        var value: UInt64 = 0
        var seenDigit = false
        var done = false
        for b in field {
            if b == 0 || b == 0x20 {
                if seenDigit { done = true }
                continue
            }
            guard !done, (0x30...0x37).contains(b) else { throw fail("bad octal field at \(start)", at: offset) }
            guard value >> 60 == 0 else { throw fail("octal number overflows", at: offset) }
            value = value << 3 | UInt64(b - 0x30)
            seenDigit = true
        }
        return value
    }

    private func decimal(_ bytes: [UInt8], what: String, at offset: UInt64) throws -> UInt64 {
        guard !bytes.isEmpty, bytes.count <= 20, bytes.allSatisfy({ (0x30...0x39).contains($0) }),
              let v = UInt64(String(decoding: bytes, as: UTF8.self)) else {
            throw fail("bad number in \(what)", at: offset)
        }
        return v
    }

    private func appendSparse(_ block: [UInt8], from start: Int, count: Int, into map: inout [Range<UInt64>], at offset: UInt64) throws {
        for i in 0..<count {
            let base = start + 24 * i
            if block[base] == 0 { break }
            let off = try number(block, base, 12, at: offset)
            let len = try number(block, base + 12, 12, at: offset)
            let (end, overflow) = off.addingReportingOverflow(len)
            guard !overflow else { throw fail("sparse entry overflows", at: offset) }
            map.append(off..<end)
        }
    }

    private func validateSparse(_ map: [Range<UInt64>], entry: TarEntry) throws {
        var last: UInt64 = 0
        var total: UInt64 = 0
        for r in map {
            guard r.lowerBound >= last, r.upperBound <= entry.size else {
                throw EROFSError(.corruptTar, "\(input.name): entry \(entry.displayPath): sparse map is unordered or beyond the file size")
            }
            last = r.upperBound
            total += UInt64(r.count)
        }
        guard total == remaining else {
            throw EROFSError(.corruptTar, "\(input.name): entry \(entry.displayPath): sparse map covers \(total) bytes but \(remaining) are stored")
        }
    }

    // MARK: PAX

    private func parsePAX(_ data: [UInt8], at offset: UInt64) throws -> [([UInt8], [UInt8])] {
        var records: [([UInt8], [UInt8])] = []
        var pos = 0
        while pos < data.count {
            if data[pos] == 0 { break }
            guard let space = data[pos...].firstIndex(of: 0x20), space - pos <= 20 else { throw fail("bad PAX record", at: offset) }
            let length = Int(clamping: try decimal(Array(data[pos..<space]), what: "a PAX record length", at: offset))
            guard length > space - pos + 2, length <= data.count - pos, data[pos + length - 1] == 0x0A else {
                throw fail("bad PAX record length", at: offset)
            }
            let record = data[(space + 1)..<(pos + length - 1)]
            guard let eq = record.firstIndex(of: 0x3D) else { throw fail("PAX record without '='", at: offset) }
            records.append((Array(record[record.startIndex..<eq]), Array(record[(eq + 1)...])))
            pos += length
        }
        return records
    }

    private func applyPAX(_ records: [([UInt8], [UInt8])], to entry: inout TarEntry) throws {
        let at = entry.headerOffset
        var sparseMajor: UInt64?
        var sparseMap: [UInt64] = []
        var realSize: UInt64?
        for (keyBytes, value) in records {
            let key = String(decoding: keyBytes, as: UTF8.self)
            switch key {
            case "path": entry.path = value
            case "linkpath": entry.linkName = value
            case "size":
                entry.storedSize = try decimal(value, what: "PAX size", at: at)
                entry.size = entry.storedSize
            case "uid": entry.uid = UInt32(truncatingIfNeeded: try decimal(value, what: "PAX uid", at: at))
            case "gid": entry.gid = UInt32(truncatingIfNeeded: try decimal(value, what: "PAX gid", at: at))
            case "mtime":
                let text = String(decoding: value, as: UTF8.self)
                let parts = text.split(separator: ".", maxSplits: 1)
                let negative = text.hasPrefix("-")
                guard let first = parts.first, let sec = Int64(first) else { throw fail("bad PAX mtime", at: at) }
                var nsec: UInt32 = 0
                if parts.count == 2 {
                    let digits = String(parts[1].prefix(9))
                    let frac = digits + String(repeating: "0", count: 9 - digits.count)
                    guard let n = UInt32(frac) else { throw fail("bad PAX mtime", at: at) }
                    nsec = n
                }
                if negative && nsec > 0 {
                    entry.mtime = sec - 1
                    entry.mtimeNsec = 1_000_000_000 - nsec
                } else {
                    entry.mtime = sec
                    entry.mtimeNsec = nsec
                }
            case "GNU.sparse.major": sparseMajor = try decimal(value, what: "GNU.sparse.major", at: at)
            case "GNU.sparse.name": entry.path = value
            case "GNU.sparse.realsize", "GNU.sparse.size": realSize = try decimal(value, what: key, at: at)
            case "GNU.sparse.map":
                for part in value.split(separator: 0x2C) { sparseMap.append(try decimal(Array(part), what: "GNU.sparse.map", at: at)) }
            case "GNU.sparse.offset", "GNU.sparse.numbytes":
                sparseMap.append(try decimal(value, what: key, at: at))
            default:
                if key.hasPrefix("SCHILY.xattr.") {
                    entry.xattrs.append((Array(keyBytes.dropFirst("SCHILY.xattr.".utf8.count)), value))
                }
            }
        }
        if let realSize {
            if sparseMajor == 1 {
                pendingSparseV1 = true
                entry.size = realSize
            } else {
                guard sparseMap.count % 2 == 0 else { throw fail("odd GNU.sparse.map", at: at) }
                entry.size = realSize
                var map: [Range<UInt64>] = []
                for i in stride(from: 0, to: sparseMap.count, by: 2) {
                    let (end, overflow) = sparseMap[i].addingReportingOverflow(sparseMap[i + 1])
                    guard !overflow else { throw fail("sparse map overflows", at: at) }
                    map.append(sparseMap[i]..<end)
                }
                entry.sparse = map
            }
        }
    }

    /// PAX sparse format 1.0: the map is a block of decimal lines at the start of the data.
    private func readSparseV1Map(_ entry: inout TarEntry) throws {
        var text: [UInt8] = []
        var numbers: [UInt64] = []
        var needed: Int?
        var consumed: UInt64 = 0
        var scratch = [UInt8](repeating: 0, count: 512)
        while needed == nil || numbers.count < needed! {
            guard remaining >= 512 else { throw EROFSError(.corruptTar, "\(input.name): entry \(entry.displayPath): truncated sparse map") }
            _ = try scratch.withUnsafeMutableBytes { try readData(into: $0, entry: entry.displayPath) }
            consumed += 512
            text += scratch
            while let nl = text.firstIndex(of: 0x0A) {
                numbers.append(try decimal(Array(text[..<nl]), what: "the sparse map", at: entry.headerOffset))
                text.removeSubrange(...nl)
                if needed == nil, let n = numbers.first {
                    guard n < 1 << 20 else { throw EROFSError(.limitExceeded, "\(input.name): sparse map too long") }
                    needed = 1 + 2 * Int(n)
                }
                if let needed, numbers.count == needed { break }
            }
            guard consumed < UInt64(limits.maxMetadataRecord) else { throw EROFSError(.limitExceeded, "\(input.name): sparse map too long") }
        }
        var map: [Range<UInt64>] = []
        var i = 1
        while i + 1 < numbers.count {
            let (end, overflow) = numbers[i].addingReportingOverflow(numbers[i + 1])
            guard !overflow else { throw fail("sparse map overflows", at: entry.headerOffset) }
            map.append(numbers[i]..<end)
            i += 2
        }
        entry.sparse = map
        entry.storedSize = remaining
        try validateSparse(map, entry: entry)
    }
}
