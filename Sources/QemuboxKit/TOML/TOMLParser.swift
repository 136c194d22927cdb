/// A TOML 1.0.0 parser (https://toml.io/en/v1.0.0), written for `config.toml`: it reads
/// bytes, refuses every malformed document with a ``TOMLError`` naming the line and
/// column, and never traps, whatever the input.
///
/// Everything in the specification is supported: comments; bare, quoted and dotted keys;
/// basic, literal and multi-line strings with every escape; decimal, hexadecimal, octal
/// and binary integers (64-bit, overflow is an error); floats with `inf` and `nan`;
/// booleans; offset and local date-times, local dates and local times (validated, leap
/// years included); arrays; inline tables; `[table]` headers and `[[arrays of tables]]`,
/// with every redefinition rule. Invalid UTF-8 and control characters other than tab
/// are errors. A leading UTF-8 byte order mark is skipped. CRLF newlines inside
/// multi-line strings become LF.
///
/// Beyond the specification, to bound what hostile input can cost: documents above
/// ``maxInputBytes`` are refused, containers (tables, arrays, inline tables) may nest
/// at most ``maxDepth`` deep, and a second of `60` (a leap second) is refused, as
/// Python's `tomllib` does.
///
/// ```swift
/// let table = try TOMLParser.parse(Array("[network]\nnetworks = [\"qemubox\"]\n".utf8))
/// let networks = table["network"]?.table?["networks"]?.array   // [.string("qemubox")]
/// ```
package struct TOMLParser {
    /// The largest document accepted: 4 MiB.
    package static let maxInputBytes = 4 << 20
    /// How deep tables, arrays and inline tables may nest (the document's root is depth 0).
    package static let maxDepth = 128

    /// Parses a document given as bytes (UTF-8).
    package static func parse(_ bytes: [UInt8]) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(bytes: bytes)
        return try parser.parseDocument()
    }

    /// Parses a document given as text.
    package static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        try parse(Array(text.utf8))
    }

    /// The document.
    let bytes: [UInt8]
    /// The offset of the next byte to read.
    var pos = 0
    /// The document's tables.
    var document = TOMLTableBuilder()

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    // MARK: - The document

    /// The document's statements, one per line: key/value pairs, headers, comments.
    private mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        guard bytes.count <= Self.maxInputBytes else {
            throw TOMLError(line: 1, column: 1,
                            message: "the document is larger than \(Self.maxInputBytes >> 20) MiB")
        }
        if let bad = Self.firstInvalidUTF8(bytes) {
            throw error("invalid UTF-8 (byte 0x\(String(bytes[bad], radix: 16, uppercase: true)))", at: bad)
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }
        var table = TOMLTableBuilder.root
        while true {
            skipWhitespace()
            guard let byte = peek() else { break }
            switch byte {
            case ASCII.lineFeed, ASCII.carriageReturn:
                try expectNewline()
                continue
            case ASCII.hash:
                break
            case ASCII.openBracket:
                table = try parseHeader()
            case _ where ASCII.isBareKey(byte) || byte == ASCII.quote || byte == ASCII.apostrophe:
                try parseKeyValue(into: table)
            default:
                throw unexpected("expected a key, a [table] header or a comment")
            }
            skipWhitespace()
            try skipComment()
            guard peek() != nil else { break }
            try expectNewline()
        }
        return document.table(TOMLTableBuilder.root)
    }

    /// `key = value` at the top level of a section, into the section's table.
    mutating func parseKeyValue(into table: Int) throws(TOMLError) {
        let key = try parseKey()
        guard peek() == ASCII.equals else { throw unexpected("expected '=' after a key") }
        pos += 1
        skipWhitespace()
        let value = try parseValue(depth: document.depth(of: table) + key.count)
        do {
            try document.insert(value, at: key, in: table)
        } catch {
            throw self.error(error)
        }
    }

    /// `[a.b]` or `[[a.b]]`: returns the table that the following keys go into.
    mutating func parseHeader() throws(TOMLError) -> Int {
        pos += 1
        let isArray = peek() == ASCII.openBracket
        if isArray { pos += 1 }
        skipWhitespace()
        let key = try parseKey()
        guard peek() == ASCII.closeBracket, !isArray || peek(1) == ASCII.closeBracket else {
            throw unexpected(isArray ? "expected ']]' at the end of an [[array of tables]] header"
                                     : "expected ']' at the end of a [table] header")
        }
        pos += isArray ? 2 : 1
        document.endSection()
        do {
            return isArray ? try document.appendTable(at: key) : try document.defineTable(at: key)
        } catch {
            throw self.error(error)
        }
    }

    // MARK: - Keys

    /// One part of a dotted key, with where it starts (for errors).
    struct KeyPart {
        /// The part, unquoted and unescaped.
        var name: String
        /// Where it starts in the document.
        var offset: Int
    }

    /// A bare, quoted or dotted key; whitespace around the dots and after the key is skipped.
    mutating func parseKey() throws(TOMLError) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            let start = pos
            guard let byte = peek() else { throw unexpected("expected a key") }
            let name: String
            if ASCII.isBareKey(byte) {
                while let next = peek(), ASCII.isBareKey(next) { pos += 1 }
                name = String(decoding: bytes[start..<pos], as: UTF8.self)
            } else if byte == ASCII.quote || byte == ASCII.apostrophe {
                guard peek(1) != byte || peek(2) != byte else {
                    throw error("a key cannot be a multi-line string", at: start)
                }
                name = byte == ASCII.quote ? try parseBasicString() : try parseLiteralString()
            } else {
                throw unexpected("expected a key")
            }
            parts.append(KeyPart(name: name, offset: start))
            guard parts.count <= Self.maxDepth else {
                throw error("a key of more than \(Self.maxDepth) parts", at: start)
            }
            skipWhitespace()
            guard peek() == ASCII.dot else { return parts }
            pos += 1
            skipWhitespace()
        }
    }

    /// A key as written in messages: `a."b c".d`.
    static func display(_ key: some Collection<KeyPart>) -> String {
        key.map { part in
            !part.name.isEmpty && part.name.utf8.allSatisfy(ASCII.isBareKey)
                ? part.name : String(reflecting: part.name)
        }.joined(separator: ".")
    }

    // MARK: - Whitespace, comments, newlines

    /// Skips spaces and tabs.
    mutating func skipWhitespace() {
        while let byte = peek(), byte == ASCII.space || byte == ASCII.tab { pos += 1 }
    }

    /// Skips a comment, if one starts here, up to (not including) the end of its line.
    mutating func skipComment() throws(TOMLError) {
        guard peek() == ASCII.hash else { return }
        pos += 1
        while let byte = peek(), byte != ASCII.lineFeed {
            if byte == ASCII.carriageReturn, peek(1) == ASCII.lineFeed { return }
            if ASCII.isControl(byte) && byte != ASCII.tab {
                throw error("\(ASCII.name(byte)) is not allowed in a comment", at: pos)
            }
            pos += 1
        }
    }

    /// Consumes LF or CRLF.
    mutating func expectNewline() throws(TOMLError) {
        switch peek() {
        case ASCII.lineFeed:
            pos += 1
        case ASCII.carriageReturn where peek(1) == ASCII.lineFeed:
            pos += 2
        case ASCII.carriageReturn:
            throw error("a carriage return must be followed by a line feed", at: pos)
        default:
            throw unexpected("expected the end of the line")
        }
    }

    /// Skips whitespace, newlines and comments (inside arrays).
    mutating func skipWhitespaceNewlinesAndComments() throws(TOMLError) {
        while true {
            skipWhitespace()
            try skipComment()
            switch peek() {
            case ASCII.lineFeed, ASCII.carriageReturn: try expectNewline()
            default: return
            }
        }
    }

    // MARK: - Bytes and errors

    /// The byte `ahead` of the current position, nil past the end.
    @inline(__always)
    func peek(_ ahead: Int = 0) -> UInt8? {
        let index = pos + ahead
        return index < bytes.count ? bytes[index] : nil
    }

    /// Whether the bytes at the current position are `literal`.
    func lookingAt(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - pos >= count else { return false }
        return literal.withUTF8Buffer { buffer in
            buffer.indices.allSatisfy { bytes[pos + $0] == buffer[$0] }
        }
    }

    /// An error at `offset`, with its line and column.
    func error(_ message: String, at offset: Int) -> TOMLError {
        let end = min(max(offset, 0), bytes.count)
        var line = 1, lineStart = 0
        for index in 0..<end where bytes[index] == ASCII.lineFeed {
            line += 1
            lineStart = index + 1
        }
        // Columns count scalars: every byte that is not a UTF-8 continuation byte.
        var column = 1
        for index in lineStart..<end where bytes[index] & 0xC0 != 0x80 { column += 1 }
        return TOMLError(line: line, column: column, message: message)
    }

    /// `message`, then what was found at the current position, at that position.
    func unexpected(_ message: String) -> TOMLError {
        error("\(message), found \(describeCurrent())", at: pos)
    }

    /// The current byte for messages: `'x'`, `a newline`, `the end of the document`.
    func describeCurrent() -> String {
        guard let byte = peek() else { return "the end of the document" }
        switch byte {
        case ASCII.lineFeed, ASCII.carriageReturn: return "the end of the line"
        case _ where ASCII.isControl(byte): return ASCII.name(byte)
        case _ where ASCII.isBareKey(byte):
            // A whole word: found 'tru', found 'NaN'.
            var end = pos + 1
            while end < bytes.count, end - pos < 32, ASCII.isBareKey(bytes[end]) { end += 1 }
            return "'\(String(decoding: bytes[pos..<end], as: UTF8.self))'"
        case 0x20..<0x7F: return "'\(Character(Unicode.Scalar(byte)))'"
        default:
            // A whole (valid) UTF-8 sequence.
            var end = pos + 1
            while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
            return "'\(String(decoding: bytes[pos..<end], as: UTF8.self))'"
        }
    }

    /// The offset of the first byte that is not part of a valid UTF-8 sequence
    /// (overlong forms, surrogates and values above U+10FFFF are invalid), nil if none.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return index
            }
            for offset in 1..<length {
                guard index + offset < count else { return index }
                let byte = bytes[index + offset]
                let (min, max) = offset == 1 ? (low, high) : (0x80, 0xBF)
                guard byte >= min, byte <= max else { return index }
            }
            index += length
        }
        return nil
    }
}

/// The ASCII bytes the parser looks for, and byte classes.
enum ASCII {
    /// `\t`
    static let tab: UInt8 = 0x09
    /// `\n`
    static let lineFeed: UInt8 = 0x0A
    /// `\r`
    static let carriageReturn: UInt8 = 0x0D
    /// ` `
    static let space: UInt8 = 0x20
    /// `"`
    static let quote: UInt8 = 0x22
    /// `#`
    static let hash: UInt8 = 0x23
    /// `'`
    static let apostrophe: UInt8 = 0x27
    /// `+`
    static let plus: UInt8 = 0x2B
    /// `,`
    static let comma: UInt8 = 0x2C
    /// `-`
    static let minus: UInt8 = 0x2D
    /// `.`
    static let dot: UInt8 = 0x2E
    /// `:`
    static let colon: UInt8 = 0x3A
    /// `=`
    static let equals: UInt8 = 0x3D
    /// `[`
    static let openBracket: UInt8 = 0x5B
    /// `\`
    static let backslash: UInt8 = 0x5C
    /// `]`
    static let closeBracket: UInt8 = 0x5D
    /// `_`
    static let underscore: UInt8 = 0x5F
    /// `{`
    static let openBrace: UInt8 = 0x7B
    /// `}`
    static let closeBrace: UInt8 = 0x7D
    /// DEL, a control character.
    static let delete: UInt8 = 0x7F

    /// `A-Z a-z 0-9 _ -`.
    @inline(__always)
    static func isBareKey(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, underscore, minus: true
        default: false
        }
    }

    /// `0-9`.
    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// U+0000…U+001F and U+007F.
    @inline(__always)
    static func isControl(_ byte: UInt8) -> Bool { byte < 0x20 || byte == delete }

    /// `the control character U+0001` (or `a tab`, `a carriage return`).
    static func name(_ byte: UInt8) -> String {
        switch byte {
        case tab: "a tab"
        case lineFeed: "a newline"
        case carriageReturn: "a carriage return"
        default: "the control character U+" + hex4(UInt32(byte))
        }
    }

    /// `value` as at least four uppercase hex digits.
    static func hex4(_ value: UInt32) -> String {
        let hex = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
