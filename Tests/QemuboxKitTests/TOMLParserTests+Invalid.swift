import Foundation
import QemuboxKit
import Testing

/// Invalid documents (each with the line, column and message of its error), invalid UTF-8,
/// the limits, the inputs that crashed toml++ and the errors of `config.toml`.
extension TOMLParserTests {
    // MARK: - Invalid documents

    @Test(arguments: [
        // Statements and keys.
        ("a = 1\na : 2", 2, 3, "expected '=' after a key, found ':'"),
        ("= 1", 1, 1, "expected a key, a [table] header or a comment, found '='"),
        ("a b = 1", 1, 3, "expected '=' after a key, found 'b'"),
        ("a = ", 1, 5, "expected a value, found the end of the document"),
        ("a =\n1", 1, 4, "expected a value, found the end of the line"),
        ("a = 1 b = 2", 1, 7, "expected the end of the line, found 'b'"),
        ("a. = 1", 1, 4, "expected a key, found '='"),
        ("\"\"\"k\"\"\" = 1", 1, 1, "a key cannot be a multi-line string"),
        ("a = 1\rb = 2", 1, 6, "a carriage return must be followed by a line feed"),
        ("# ok\n# bad \u{7F}", 2, 7, "the control character U+007F is not allowed in a comment"),
        // Headers.
        ("[a", 1, 3, "expected ']' at the end of a [table] header, found the end of the document"),
        ("[]", 1, 2, "expected a key, found ']'"),
        ("[[a]", 1, 4, "expected ']]' at the end of an [[array of tables]] header"),
        ("[a]]", 1, 4, "expected the end of the line, found ']'"),
        ("[ [a] ]", 1, 3, "expected a key, found '['"),
        // Redefinitions.
        ("a = 1\na = 2", 2, 1, "key a is defined twice"),
        ("[a]\nb = 1\n[a]", 3, 2, "table [a] is defined twice"),
        ("a.b = 1\n[a]", 2, 2, "table [a] is already defined by dotted keys"),
        ("[a]\nb.c = 1\n[a.b]", 3, 2, "table [a.b] is already defined by dotted keys"),
        ("[a.b.c]\nz = 9\n[a]\nb.c.t = 1", 4, 3, "cannot add to table b.c with dotted keys: it is defined by a [table] header"),
        ("[a]\nb.c = 1\n[x]\n[a]", 4, 2, "table [a] is defined twice"),
        ("a = {}\n[a.b]", 2, 2, "cannot add to inline table a"),
        ("a = {b = 1}\na.c = 2", 2, 1, "cannot add to inline table a"),
        ("a = [1]\n[[a]]", 2, 3, "cannot append to a with [[a]]: it is a static array"),
        ("a = [{}]\n[a.b]", 2, 2, "cannot add to array a"),
        ("[[a]]\n[a]", 2, 2, "a is an array of tables, [a] cannot define it"),
        ("[a]\n[[a]]", 2, 3, "a is a table, [[a]] cannot make it an array of tables"),
        ("[[a]]\nb.c = 1\n[x]\n[[a]]\nb = 2\n[a.b]", 6, 2, "key a.b is an integer, not a table"),
        ("a = 1\n[a.b]", 2, 2, "key a is an integer, not a table"),
        ("a = 1\na.b = 2", 2, 1, "key a is an integer, not a table"),
        ("a = {b = 1, b = 2}", 1, 13, "key b is defined twice"),
        ("a = {b.c = 1, b = 2}", 1, 15, "key b is defined twice"),
        ("a = {b = {c = 1}, b.d = 2}", 1, 19, "cannot add to inline table b"),
        // Inline tables and arrays.
        ("a = {x = 1,}", 1, 12, "an inline table cannot have a trailing comma"),
        ("a = {x = 1\n}", 1, 11, "an inline table must end on the line it starts"),
        ("a = {\nx = 1}", 1, 6, "expected a key, found the end of the line"),
        ("a = [1 2]", 1, 8, "expected ',' or ']' after an array element, found '2'"),
        ("a = [1,,2]", 1, 8, "expected a value, found ','"),
        ("a = [,]", 1, 6, "expected a value, found ','"),
        ("a = [1", 1, 7, "expected ',' or ']' after an array element, found the end of the document"),
        // Strings.
        ("a = \"abc", 1, 5, "unterminated string"),
        ("a = \"abc\nd\"", 1, 9, "unterminated string: a basic string ends on the line it starts"),
        ("a = \"\\x41\"", 1, 6, "invalid escape sequence \\x"),
        ("a = \"\\ \"", 1, 6, "invalid escape sequence '\\' followed by ' '"),
        ("a = \"\\u12\"", 1, 6, "\\u must be followed by 4 hex digits"),
        ("a = \"\\uD800\"", 1, 6, "\\uD800 is not a Unicode scalar value"),
        ("a = \"\\U00110000\"", 1, 6, "\\U00110000 is not a Unicode scalar value"),
        ("a = \"x\u{1}\"", 1, 7, "the control character U+0001 must be escaped in a string"),
        ("a = 'x\u{0}'", 1, 7, "the control character U+0000 is not allowed in a literal string"),
        ("a = 'line\nbreak'", 1, 10, "unterminated literal string"),
        ("a = \"\"\"x\"\"\"\"\"\"", 1, 14, "expected the end of the line, found '\"'"),
        ("a = \"\"\"x\\ y\"\"\"", 1, 9, "a '\\' followed by whitespace must end its line"),
        ("a = \"\"\"\nx\u{8}\"\"\"", 2, 2, "the control character U+0008 must be escaped in a string"),
        ("a = '''\nx\ry'''", 2, 2, "a carriage return must be followed by a line feed"),
        ("a = '''x", 1, 5, "unterminated multi-line literal string"),
        // Integers.
        ("a = 01", 1, 5, "invalid number 01: leading zeros are not allowed"),
        ("a = 1__0", 1, 7, "'_' must stand between two digits"),
        ("a = 1_", 1, 6, "'_' must stand between two digits"),
        ("a = _1", 1, 5, "expected a value, found '_1'"),
        ("a = 0x_1", 1, 7, "'_' must stand between two digits"),
        ("a = +0x1", 1, 5, "a hexadecimal integer cannot have a sign"),
        ("a = 0o8", 1, 7, "expected octal digits (0-7), found '8'"),
        ("a = 0b", 1, 7, "expected binary digits (0 and 1)"),
        ("a = 0X1", 1, 6, "invalid number 0X1"),
        ("a = 9223372036854775808", 1, 5, "integer 9223372036854775808 does not fit in 64 bits"),
        ("a = -9223372036854775809", 1, 5, "does not fit in 64 bits"),
        ("a = 0x8000000000000000", 1, 5, "does not fit in 64 bits"),
        ("a = 1-2", 1, 6, "invalid number 1-2"),
        // Floats.
        ("a = 1.", 1, 7, "after '.', expected digits"),
        ("a = .5", 1, 5, "expected a value, found '.'"),
        ("a = 1.e5", 1, 7, "after '.', expected digits"),
        ("a = 1e", 1, 7, "in the exponent, expected digits"),
        ("a = 1e_5", 1, 7, "in the exponent, '_' must stand between two digits"),
        ("a = 00.5", 1, 5, "leading zeros are not allowed"),
        ("a = 1.5.3", 1, 8, "invalid number 1.5.3"),
        ("a = infinity", 1, 5, "expected a value, found 'infinity'"),
        ("a = NaN", 1, 5, "expected a value, found 'NaN'"),
        ("a = tru", 1, 5, "expected a value, found 'tru'"),
        ("a = truee", 1, 9, "expected the end of the line, found 'e'"),
        // Dates and times.
        ("a = 1979-02-29", 1, 13, "day 29 is out of range: 1979 is not a leap year"),
        ("a = 1900-02-29", 1, 13, "1900 is not a leap year"),
        ("a = 1979-04-31", 1, 13, "day 31 is out of range: month 4 has 30 days"),
        ("a = 1979-13-01", 1, 10, "month 13 is out of range"),
        ("a = 1979-00-01", 1, 10, "month 0 is out of range"),
        ("a = 1979-5-27", 1, 5, "a date is YYYY-MM-DD"),
        ("a = 1979-05-27T24:00:00", 1, 16, "hour 24 is out of range"),
        ("a = 1979-05-27T07:60:00", 1, 19, "minute 60 is out of range"),
        ("a = 1979-05-27T07:32:60", 1, 22, "second 60 is out of range"),
        ("a = 1979-05-27T07:32", 1, 16, "a time is HH:MM:SS (the seconds are required)"),
        ("a = 1979-05-27T", 1, 16, "a time is HH:MM:SS"),
        ("a = 1979-05-27 07:3", 1, 16, "a time is HH:MM:SS"),
        ("a = 1979-05-27T07:32:00.", 1, 25, "a '.' in a time must be followed by digits"),
        ("a = 1979-05-27T07:32:00+24:00", 1, 24, "time offset +24:00 is out of range"),
        ("a = 1979-05-27T07:32:00+0700", 1, 24, "a time offset is Z or ±HH:MM"),
        ("a = 1979-05-27T07:32:00Zx", 1, 25, "expected the end of the line, found 'x'"),
        ("a = 07:32", 1, 5, "(the seconds are required)"),
        ("a = 07:32:00Z", 1, 13, "expected the end of the line, found 'Z'"),
        // Encoding.
        ("a = \"é\u{1}\"", 1, 7, "the control character U+0001 must be escaped"),
    ])
    func invalid(_ document: String, _ line: Int, _ column: Int, _ message: String) {
        #expect {
            try TOMLParser.parse(document)
        } throws: { error in
            guard let error = error as? TOMLError else { return false }
            return error.line == line && error.column == column && error.message.contains(message)
        }
    }

    @Test func invalidUTF8() {
        for (bytes, column) in [([0x61, 0x20, 0x3D, 0x20, 0x22, 0xFF, 0x22] as [UInt8], 6),  // not a lead byte
                                ([0x23, 0x20, 0xC0, 0xAF], 3),                              // overlong '/'
                                ([0x61, 0x3D, 0x22, 0xED, 0xA0, 0x80, 0x22], 4),            // a surrogate
                                ([0x61, 0x3D, 0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 4),      // above U+10FFFF
                                ([0x61, 0x3D, 0x22, 0xC3], 4)] {                            // truncated
            #expect {
                try TOMLParser.parse(bytes)
            } throws: { error in
                (error as? TOMLError).map { $0.line == 1 && $0.column == column && $0.message.hasPrefix("invalid UTF-8") } ?? false
            }
        }
        // Columns count scalars, not bytes.
        #expect(throws: TOMLError(line: 2, column: 6, message: "expected '=' after a key, found '?'")) {
            try TOMLParser.parse("a = 1\n\"é😀\" ?")
        }
    }

    // MARK: - Limits

    @Test func limits() throws {
        let depth = TOMLParser.maxDepth
        #expect(throws: Never.self) { try TOMLParser.parse("a = " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth)) }
        #expect(throws: TOMLError.self) { try TOMLParser.parse("a = " + String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)) }
        #expect(throws: TOMLError.self) { try TOMLParser.parse("a = " + String(repeating: "{b=", count: depth + 1) + "1" + String(repeating: "}", count: depth + 1)) }
        // Depth adds up across headers, dotted keys and inline tables.
        let header = "[" + Array(repeating: "h", count: 100).joined(separator: ".") + "]\n"
        #expect(throws: Never.self) { try TOMLParser.parse(header + "a.b = {c = [1]}") }
        #expect(throws: TOMLError.self) { try TOMLParser.parse(header + Array(repeating: "k", count: 20).joined(separator: ".") + " = " + String(repeating: "[", count: 10) + String(repeating: "]", count: 10)) }
        #expect(throws: TOMLError.self) { try TOMLParser.parse("[" + Array(repeating: "h", count: depth + 1).joined(separator: ".") + "]") }
        // A hostile nesting is refused quickly, not by overflowing the stack.
        #expect(throws: TOMLError.self) { try TOMLParser.parse("a = " + String(repeating: "[", count: 100_000)) }
        #expect(throws: TOMLError(line: 1, column: 1, message: "the document is larger than 4 MiB")) {
            try TOMLParser.parse([UInt8](repeating: 0x23, count: TOMLParser.maxInputBytes + 1))
        }
        // Many keys and many tables stay linear.
        let many = (0..<20_000).map { "[[t]]\nk\($0) = \($0)\n" }.joined()
        #expect(try TOMLParser.parse(many)["t"]?.array?.count == 20_000)
    }

    // MARK: - config.toml

    /// The inputs on which toml++ (inside TOMLKit) aborted the process: now errors with a position.
    @Test(arguments: [("config-toml-tomlpp-parse-key-assert", "fuzz.toml:3:3: expected a key, found '='"),
                      ("config-toml-tomlpp-parse-time-assert", "fuzz.toml:4:17: invalid UTF-8 (byte 0x9D)")])
    func formerCrashInputs(_ name: String, _ message: String) throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus/config-toml")
        let bytes = try Array(Data(contentsOf: corpus.appendingPathComponent(name)))
        #expect(throws: QemuboxError(.invalidConfiguration, message)) {
            try QemuboxConfiguration.parse(bytes: bytes, source: "fuzz.toml")
        }
        // As text (the invalid byte repaired to U+FFFD), the time is refused instead.
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(throws: QemuboxError.self) { try QemuboxConfiguration.parse(text, source: "fuzz.toml") }
    }

    @Test func configurationErrorsCarryThePosition() {
        #expect(throws: QemuboxError(.invalidConfiguration, "cfg.toml:3:7: expected '=' after a key, found ':'")) {
            try QemuboxConfiguration.parse("vcpus = 2\n\nmemory: 512\n", source: "cfg.toml")
        }
        #expect(throws: QemuboxError(.invalidConfiguration, "cfg.toml: vcpus must be an integer, not a float")) {
            try QemuboxConfiguration.parse("vcpus = 2.0", source: "cfg.toml")
        }
        #expect(throws: QemuboxError(.invalidConfiguration, "cfg.toml: network must be a table, not an array")) {
            try QemuboxConfiguration.parse("network = []", source: "cfg.toml")
        }
        #expect(throws: QemuboxError(.invalidConfiguration, "cfg.toml:2:1: key vcpus is defined twice")) {
            try QemuboxConfiguration.parse("vcpus = 2\nvcpus = 3", source: "cfg.toml")
        }
    }
}
