extension TOMLParser {
    /// An integer or a float: the whole token (`[0-9A-Za-z_.+-]*`) is read, then checked.
    ///
    /// Integers: decimal with an optional sign and no leading zero, or `0x`, `0o`, `0b`
    /// without a sign; `_` only between two digits; the value must fit in `Int64`. Floats:
    /// a decimal integer part, then a fraction (`.` and digits), an exponent (`e`, an
    /// optional sign and digits) or both; `inf` and `nan` with an optional sign. A float
    /// too large for binary64 is infinite (as in C's `strtod` and Python).
    mutating func parseNumber() throws(TOMLError) -> TOMLValue {
        let start = pos
        while let byte = peek(), Self.isNumberByte(byte) { pos += 1 }
        let token = Array(bytes[start..<pos])
        do {
            return try Self.number(token)
        } catch {
            throw self.error(error.message, at: start + error.offset)
        }
    }

    /// Why a number token is invalid, and where in the token.
    struct NumberError: Error {
        /// What is wrong.
        var message: String
        /// Where in the token.
        var offset: Int
    }

    /// The value of a number token (ASCII).
    static func number(_ token: [UInt8]) throws(NumberError) -> TOMLValue {
        let text = String(decoding: token.prefix(64), as: UTF8.self) + (token.count > 64 ? "…" : "")
        guard !token.isEmpty else { throw NumberError(message: "expected a value", offset: 0) }
        var index = 0
        let signed = token[0] == ASCII.plus || token[0] == ASCII.minus
        let negative = token[0] == ASCII.minus
        if signed { index = 1 }
        let rest = token[index...]
        if rest.elementsEqual("inf".utf8) { return .float(negative ? -.infinity : .infinity) }
        if rest.elementsEqual("nan".utf8) { return .float(negative ? -.nan : .nan) }

        // 0x, 0o, 0b
        if rest.count >= 2, rest[index] == UInt8(ascii: "0"),
           let (radix, name) = radixPrefix(rest[index + 1])
        {
            guard !signed else {
                throw NumberError(message: "invalid number \(text): a \(name) integer cannot have a sign", offset: 0)
            }
            let digits = token[(index + 2)...]
            if let problem = checkDigits(digits, radix: radix) {
                throw NumberError(message: "invalid number \(text): \(problem.message)", offset: index + 2 + problem.offset)
            }
            var value: UInt64 = 0
            for byte in digits where byte != ASCII.underscore {
                guard let digit = hexDigitValue(byte) else { break }
                let (shifted, overflow) = value.multipliedReportingOverflow(by: UInt64(radix))
                guard !overflow, shifted <= UInt64(Int64.max) - UInt64(digit) else {
                    throw NumberError(message: "integer \(text) does not fit in 64 bits", offset: 0)
                }
                value = shifted + UInt64(digit)
            }
            return .integer(Int64(value))
        }

        // The integer part.
        var end = index
        while end < token.count, isDigit(token[end]) || token[end] == ASCII.underscore { end += 1 }
        let integerPart = token[index..<end]
        if integerPart.isEmpty, !signed {
            throw NumberError(message: "expected a value, found '\(text)'", offset: 0)
        }
        if let problem = checkDigits(integerPart, radix: 10) {
            throw NumberError(message: "invalid number \(text): \(problem.message)", offset: index + problem.offset)
        }
        if integerPart.count > 1, token[index] == UInt8(ascii: "0") {
            throw NumberError(message: "invalid number \(text): leading zeros are not allowed", offset: index)
        }
        var isFloat = false
        if end < token.count, token[end] == ASCII.dot {
            isFloat = true
            let fractionStart = end + 1
            end = fractionStart
            while end < token.count, isDigit(token[end]) || token[end] == ASCII.underscore { end += 1 }
            if let problem = checkDigits(token[fractionStart..<end], radix: 10) {
                throw NumberError(message: "invalid number \(text): after '.', \(problem.message)",
                                  offset: fractionStart + problem.offset)
            }
        }
        if end < token.count, token[end] == UInt8(ascii: "e") || token[end] == UInt8(ascii: "E") {
            isFloat = true
            end += 1
            if end < token.count, token[end] == ASCII.plus || token[end] == ASCII.minus { end += 1 }
            let exponentStart = end
            while end < token.count, isDigit(token[end]) || token[end] == ASCII.underscore { end += 1 }
            if let problem = checkDigits(token[exponentStart..<end], radix: 10) {
                throw NumberError(message: "invalid number \(text): in the exponent, \(problem.message)",
                                  offset: exponentStart + problem.offset)
            }
        }
        guard end == token.count else {
            throw NumberError(message: "invalid number \(text)", offset: end)
        }

        if isFloat {
            let plain = String(decoding: token.lazy.filter { $0 != ASCII.underscore }, as: UTF8.self)
            guard let value = Double(plain) else {
                throw NumberError(message: "invalid number \(text)", offset: 0)
            }
            return .float(value)
        }
        // Accumulated negatively, so that Int64.min fits.
        var value: Int64 = 0
        for byte in integerPart where byte != ASCII.underscore {
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = shifted.subtractingReportingOverflow(Int64(byte - 0x30))
            guard !overflow, !overflow2 else {
                throw NumberError(message: "integer \(text) does not fit in 64 bits", offset: 0)
            }
            value = next
        }
        if negative { return .integer(value) }
        guard value != .min else {
            throw NumberError(message: "integer \(text) does not fit in 64 bits", offset: 0)
        }
        return .integer(-value)
    }

    /// Bytes that can belong to a number token.
    @inline(__always)
    static func isNumberByte(_ byte: UInt8) -> Bool {
        ASCII.isBareKey(byte) || byte == ASCII.dot || byte == ASCII.plus
    }

    @inline(__always)
    private static func isDigit(_ byte: UInt8) -> Bool { ASCII.isDigit(byte) }

    /// The radix named by the letter after `0`: `x`, `o`, `b`.
    private static func radixPrefix(_ byte: UInt8) -> (Int, String)? {
        switch byte {
        case UInt8(ascii: "x"): (16, "hexadecimal")
        case UInt8(ascii: "o"): (8, "octal")
        case UInt8(ascii: "b"): (2, "binary")
        default: nil
        }
    }

    /// Checks a run of digits in `radix` with `_` separators: at least one digit, `_` only
    /// between two digits. Returns what is wrong and where in `digits`, nil when fine.
    private static func checkDigits(_ digits: ArraySlice<UInt8>, radix: Int) -> (message: String, offset: Int)? {
        let digitName = switch radix {
        case 16: "hexadecimal digits"
        case 8: "octal digits (0-7)"
        case 2: "binary digits (0 and 1)"
        default: "digits"
        }
        guard !digits.isEmpty else { return ("expected \(digitName)", 0) }
        var previousWasDigit = false
        for (offset, byte) in digits.enumerated() {
            if byte == ASCII.underscore {
                guard previousWasDigit, offset + 1 < digits.count else {
                    return ("'_' must stand between two digits", offset)
                }
                previousWasDigit = false
            } else if let value = hexDigitValue(byte), Int(value) < radix {
                previousWasDigit = true
            } else {
                return ("expected \(digitName), found '\(Character(Unicode.Scalar(byte)))'", offset)
            }
        }
        return nil
    }
}
