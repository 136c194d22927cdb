extension TOMLParser {
    /// `"…"`: escapes resolved; control characters other than tab must be escaped.
    mutating func parseBasicString() throws(TOMLError) -> String {
        let open = pos
        pos += 1
        var start = pos
        var buffer: [UInt8]? = nil
        while true {
            guard let byte = peek() else { throw error("unterminated string", at: open) }
            switch byte {
            case ASCII.quote:
                let tail = bytes[start..<pos]
                pos += 1
                guard var text = buffer else { return String(decoding: tail, as: UTF8.self) }
                text += tail
                return String(decoding: text, as: UTF8.self)
            case ASCII.backslash:
                var text = buffer ?? []
                text += bytes[start..<pos]
                try parseEscape(into: &text, multiline: false)
                buffer = text
                start = pos
            case ASCII.lineFeed, ASCII.carriageReturn:
                throw error("unterminated string: a basic string ends on the line it starts (\"\"\" starts a multi-line one)",
                            at: pos)
            case _ where ASCII.isControl(byte) && byte != ASCII.tab:
                throw error("\(ASCII.name(byte)) must be escaped in a string", at: pos)
            default:
                pos += 1
            }
        }
    }

    /// `"""…"""`: a newline right after the opening quotes is dropped, a `\` at the end of a
    /// line removes the newline and the whitespace after it, CRLF becomes LF, and up to two
    /// quotes may stand right before the closing ones.
    mutating func parseMultilineBasicString() throws(TOMLError) -> String {
        let open = pos
        pos += 3
        skipFirstNewline()
        var text: [UInt8] = []
        var start = pos
        while true {
            guard let byte = peek() else { throw error("unterminated multi-line string", at: open) }
            switch byte {
            case ASCII.quote where lookingAt("\"\"\""):
                text += bytes[start..<pos]
                pos += 3
                for _ in 0..<2 where peek() == ASCII.quote {
                    text.append(ASCII.quote)
                    pos += 1
                }
                return String(decoding: text, as: UTF8.self)
            case ASCII.backslash:
                text += bytes[start..<pos]
                try parseEscape(into: &text, multiline: true)
                start = pos
            case ASCII.carriageReturn:
                guard peek(1) == ASCII.lineFeed else {
                    throw error("a carriage return must be followed by a line feed", at: pos)
                }
                text += bytes[start..<pos]
                pos += 1
                start = pos
            case _ where ASCII.isControl(byte) && byte != ASCII.tab && byte != ASCII.lineFeed:
                throw error("\(ASCII.name(byte)) must be escaped in a string", at: pos)
            default:
                pos += 1
            }
        }
    }

    /// `'…'`: taken as written, on one line; no control characters other than tab.
    mutating func parseLiteralString() throws(TOMLError) -> String {
        let open = pos
        pos += 1
        let start = pos
        while true {
            guard let byte = peek() else { throw error("unterminated literal string", at: open) }
            switch byte {
            case ASCII.apostrophe:
                pos += 1
                return String(decoding: bytes[start..<(pos - 1)], as: UTF8.self)
            case ASCII.lineFeed, ASCII.carriageReturn:
                throw error("unterminated literal string: it ends on the line it starts (''' starts a multi-line one)",
                            at: pos)
            case _ where ASCII.isControl(byte) && byte != ASCII.tab:
                throw error("\(ASCII.name(byte)) is not allowed in a literal string", at: pos)
            default:
                pos += 1
            }
        }
    }

    /// `'''…'''`: taken as written, except that a newline right after the opening quotes
    /// is dropped and CRLF becomes LF; up to two apostrophes may stand right before the
    /// closing ones.
    mutating func parseMultilineLiteralString() throws(TOMLError) -> String {
        let open = pos
        pos += 3
        skipFirstNewline()
        var text: [UInt8] = []
        var start = pos
        while true {
            guard let byte = peek() else { throw error("unterminated multi-line literal string", at: open) }
            switch byte {
            case ASCII.apostrophe where lookingAt("'''"):
                text += bytes[start..<pos]
                pos += 3
                for _ in 0..<2 where peek() == ASCII.apostrophe {
                    text.append(ASCII.apostrophe)
                    pos += 1
                }
                return String(decoding: text, as: UTF8.self)
            case ASCII.carriageReturn:
                guard peek(1) == ASCII.lineFeed else {
                    throw error("a carriage return must be followed by a line feed", at: pos)
                }
                text += bytes[start..<pos]
                pos += 1
                start = pos
            case _ where ASCII.isControl(byte) && byte != ASCII.tab && byte != ASCII.lineFeed:
                throw error("\(ASCII.name(byte)) is not allowed in a literal string", at: pos)
            default:
                pos += 1
            }
        }
    }

    /// Drops a LF or CRLF right after a multi-line string's opening quotes.
    private mutating func skipFirstNewline() {
        if peek() == ASCII.lineFeed {
            pos += 1
        } else if peek() == ASCII.carriageReturn, peek(1) == ASCII.lineFeed {
            pos += 2
        }
    }

    /// An escape sequence at the current `\`, appended to `text` as UTF-8: `\b \t \n \f \r
    /// \" \\ \uXXXX \UXXXXXXXX`, and in a multi-line string a `\` ending its line (which
    /// removes the newline and all whitespace and newlines after it).
    private mutating func parseEscape(into text: inout [UInt8], multiline: Bool) throws(TOMLError) {
        let backslash = pos
        pos += 1
        guard let byte = peek() else { throw error("unterminated string", at: backslash) }
        let simple: UInt8? = switch byte {
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "t"): 0x09
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "r"): 0x0D
        case ASCII.quote: ASCII.quote
        case ASCII.backslash: ASCII.backslash
        default: nil
        }
        if let simple {
            text.append(simple)
            pos += 1
            return
        }
        if multiline, byte == ASCII.space || byte == ASCII.tab || byte == ASCII.lineFeed || byte == ASCII.carriageReturn {
            skipWhitespace()
            guard peek() == ASCII.lineFeed || peek() == ASCII.carriageReturn else {
                throw error("a '\\' followed by whitespace must end its line", at: backslash)
            }
            while true {
                skipWhitespace()
                guard peek() == ASCII.lineFeed || peek() == ASCII.carriageReturn else { break }
                try expectNewline()
            }
            return
        }
        switch byte {
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            pos += 1
            try parseUnicodeEscape(digits: byte == UInt8(ascii: "u") ? 4 : 8, at: backslash, into: &text)
        default:
            let found = (0x21..<0x7F).contains(byte)
                ? "\\\(Character(Unicode.Scalar(byte)))" : "'\\' followed by \(describeCurrent())"
            throw error("invalid escape sequence \(found) (valid: \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX)",
                        at: backslash)
        }
    }

    /// The hex digits of `\u` (4) or `\U` (8): a Unicode scalar value, appended as UTF-8.
    private mutating func parseUnicodeEscape(digits: Int, at backslash: Int, into text: inout [UInt8])
        throws(TOMLError)
    {
        var value: UInt32 = 0
        for _ in 0..<digits {
            guard let byte = peek(), let digit = Self.hexDigitValue(byte) else {
                throw error("\\\(digits == 4 ? "u" : "U") must be followed by \(digits) hex digits", at: backslash)
            }
            value = value << 4 | UInt32(digit)
            pos += 1
        }
        guard let scalar = Unicode.Scalar(value) else {
            let written = String(decoding: bytes[(backslash + 1)..<pos], as: UTF8.self)
            throw error("\\\(written) is not a Unicode scalar value", at: backslash)
        }
        UTF8.encode(scalar) { text.append($0) }
    }

    /// The value of a hex digit (`0-9 a-f A-F`), nil for any other byte.
    static func hexDigitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }
}
