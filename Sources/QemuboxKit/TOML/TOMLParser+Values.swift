extension TOMLParser {
    /// A value at `depth` (how many tables and arrays enclose it): what follows `=`, or an
    /// array element. Leaves the position just after it.
    mutating func parseValue(depth: Int) throws(TOMLError) -> TOMLValue {
        guard let byte = peek() else { throw unexpected("expected a value") }
        switch byte {
        case ASCII.quote:
            return .string(lookingAt("\"\"\"") ? try parseMultilineBasicString() : try parseBasicString())
        case ASCII.apostrophe:
            return .string(lookingAt("'''") ? try parseMultilineLiteralString() : try parseLiteralString())
        case ASCII.openBracket:
            return try parseArray(depth: depth)
        case ASCII.openBrace:
            return try parseInlineTable(depth: depth)
        case UInt8(ascii: "t") where lookingAt("true"):
            pos += 4
            return .boolean(true)
        case UInt8(ascii: "f") where lookingAt("false"):
            pos += 5
            return .boolean(false)
        case _ where ASCII.isDigit(byte):
            if let dateTime = try parseDateTimeIfPresent() { return dateTime }
            return try parseNumber()
        case ASCII.plus, ASCII.minus, UInt8(ascii: "i"), UInt8(ascii: "n"):
            return try parseNumber()
        default:
            throw unexpected("expected a value")
        }
    }

    /// `[` values `]`: any types mixed, newlines and comments between elements, a trailing comma.
    mutating func parseArray(depth: Int) throws(TOMLError) -> TOMLValue {
        try checkDepth(depth)
        pos += 1
        var elements: [TOMLValue] = []
        while true {
            try skipWhitespaceNewlinesAndComments()
            if peek() == ASCII.closeBracket {
                pos += 1
                return .array(elements)
            }
            elements.append(try parseValue(depth: depth + 1))
            try skipWhitespaceNewlinesAndComments()
            switch peek() {
            case ASCII.comma:
                pos += 1
            case ASCII.closeBracket:
                pos += 1
                return .array(elements)
            default:
                throw unexpected("expected ',' or ']' after an array element")
            }
        }
    }

    /// `{ key = value, … }` on one line, without a trailing comma; complete as written.
    mutating func parseInlineTable(depth: Int) throws(TOMLError) -> TOMLValue {
        try checkDepth(depth)
        pos += 1
        var table = TOMLTableBuilder(rootDepth: depth)
        skipWhitespace()
        if peek() == ASCII.closeBrace {
            pos += 1
            return .table(table.table(TOMLTableBuilder.root))
        }
        while true {
            let key = try parseKey()
            guard peek() == ASCII.equals else { throw unexpected("expected '=' after a key") }
            pos += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + key.count)
            do {
                try table.insert(value, at: key, in: TOMLTableBuilder.root)
            } catch {
                throw self.error(error)
            }
            skipWhitespace()
            switch peek() {
            case ASCII.comma:
                pos += 1
                skipWhitespace()
                if peek() == ASCII.closeBrace {
                    throw error("an inline table cannot have a trailing comma", at: pos)
                }
            case ASCII.closeBrace:
                pos += 1
                return .table(table.table(TOMLTableBuilder.root))
            case ASCII.lineFeed, ASCII.carriageReturn, ASCII.hash:
                throw unexpected("an inline table must end on the line it starts: expected ',' or '}'")
            default:
                throw unexpected("expected ',' or '}' after a key/value pair of an inline table")
            }
        }
    }

    /// Refuses an array or inline table deeper than ``maxDepth``.
    func checkDepth(_ depth: Int) throws(TOMLError) {
        guard depth <= Self.maxDepth else {
            throw error("arrays and tables nested more than \(Self.maxDepth) deep", at: pos)
        }
    }
}
