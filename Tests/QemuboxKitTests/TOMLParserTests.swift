import Foundation
import QemuboxKit
import Testing

/// qemubox's TOML 1.0.0 parser (`Sources/QemuboxKit/TOML/`): every kind of valid document,
/// invalid ones with the line and column of their error, the limits, the inputs that
/// crashed toml++, and a differential run against Python's `tomllib`.
@Suite struct TOMLParserTests {
    static func parse(_ text: String) throws -> TOMLTable { try TOMLParser.parse(text) }

    // MARK: - Valid documents

    @Test func commentsWhitespaceAndNewlines() throws {
        #expect(try Self.parse("").isEmpty)
        #expect(try Self.parse("\n\n  \t\n# only a comment\n").isEmpty)
        let table = try Self.parse("# c\r\n\ta = 1 # trailing é \t\r\n\n  # indented\nb=2")
        #expect(table == TOMLTable(["a": .integer(1), "b": .integer(2)]))
        #expect(try Self.parse("\u{FEFF}a = 1") == TOMLTable(["a": .integer(1)]), "a UTF-8 byte order mark is skipped")
    }

    @Test func keys() throws {
        let table = try Self.parse("""
            bare_key-1 = 1
            1234 = 2
            "quoted key" = 3
            'literal "key"' = 4
            "" = 5
            a . "b.c" . 'd' = 6
            3.14159 = "pi"
            true = 7
            "\\u00e9" = 8
            "e\\u0301" = 9
            """)
        #expect(table.keys == ["bare_key-1", "1234", "quoted key", "literal \"key\"", "", "a", "3", "true", "é", "e\u{301}"])
        #expect(table["a"]?.table?["b.c"]?.table?["d"] == .integer(6))
        #expect(table["3"]?.table?["14159"] == .string("pi"))
        // Keys are compared by scalars: U+00E9 and e + U+0301 are two keys, though Swift's == calls them equal.
        #expect(table["é"] == .integer(8))
        #expect(table["e\u{301}"] == .integer(9))
    }

    @Test func strings() throws {
        let table = try Self.parse(#"""
            basic = "tab\t quote\" backslash\\ \b\f\n\r \u00E9 \U0001F600"
            literal = 'C:\Users\no\escapes'
            tab = "a	b"
            empty = ""
            ml = """
            Roses are red
            Violets are blue"""
            joined = """\
                   The quick \
              brown fox.\
              """
            quotes = """"one" ""two"" """"
            lit_ml = '''
            raw \n ''quoted'' '''
            lit_quotes = ''''''''
            """#)
        #expect(table["basic"] == .string("tab\t quote\" backslash\\ \u{8}\u{C}\n\r é 😀"))
        #expect(table["literal"] == .string(#"C:\Users\no\escapes"#))
        #expect(table["tab"] == .string("a\tb"))
        #expect(table["empty"] == .string(""))
        #expect(table["ml"] == .string("Roses are red\nViolets are blue"))
        #expect(table["joined"] == .string("The quick brown fox."))
        #expect(table["quotes"] == .string("\"one\" \"\"two\"\" \""))
        #expect(table["lit_ml"] == .string(#"raw \n ''quoted'' "#))
        #expect(table["lit_quotes"] == .string("''"))
        // CRLF inside multi-line strings becomes LF; a backslash before CRLF joins lines.
        let crlf = try Self.parse("a = \"\"\"\r\nx\r\ny\"\"\"\r\nb = '''x\r\n'''\r\nc = \"\"\"p\\\r\n  q\"\"\"")
        #expect(crlf == TOMLTable(["a": .string("x\ny"), "b": .string("x\n"), "c": .string("pq")]))
    }

    @Test func integers() throws {
        let table = try Self.parse("""
            a = [+99, 42, 0, -17, +0, -0, 1_000, 5_349_221, 1_2_3]
            b = [0xDEADBEEF, 0xdead_beef, 0o01234567, 0o755, 0b11010110, 0b1_0]
            max = 9223372036854775807
            min = -9223372036854775808
            hexmax = 0x7FFFFFFFFFFFFFFF
            """)
        #expect(table["a"] == .array([99, 42, 0, -17, 0, 0, 1000, 5_349_221, 123].map { .integer($0) }))
        #expect(table["b"] == .array([0xDEADBEEF, 0xDEADBEEF, 0o1234567, 0o755, 0b11010110, 2].map { .integer($0) }))
        #expect(table["max"] == .integer(.max))
        #expect(table["min"] == .integer(.min))
        #expect(table["hexmax"] == .integer(.max))
    }

    @Test func floats() throws {
        let table = try Self.parse("""
            a = [+1.0, 3.1415, -0.01, 5e+22, 1e06, -2E-2, 6.626e-34, 224_617.445_991_228, 1e1_0, 0e0, 0.0]
            neg0 = -0.0
            b = [inf, +inf, -inf]
            nans = [nan, +nan, -nan]
            huge = 1e400
            """)
        #expect(table["a"] == .array([1.0, 3.1415, -0.01, 5e22, 1e6, -2e-2, 6.626e-34, 224_617.445_991_228, 1e10, 0, 0]
            .map { .float($0) }))
        let negativeZero = try #require(table["neg0"]?.float)
        #expect(negativeZero == 0 && negativeZero.sign == .minus)
        #expect(table["b"] == .array([.float(.infinity), .float(.infinity), .float(-.infinity)]))
        #expect(table["nans"]?.array?.allSatisfy { $0.float?.isNaN == true } == true)
        #expect(table["huge"] == .float(.infinity), "beyond binary64 is infinite, as with strtod")
    }

    @Test func booleans() throws {
        #expect(try Self.parse("t = true\nf = false") == TOMLTable(["t": .boolean(true), "f": .boolean(false)]))
    }

    @Test func dateTimes() throws {
        let table = try Self.parse("""
            odt1 = 1979-05-27T07:32:00Z
            odt2 = 1979-05-27T00:32:00-07:00
            odt3 = 1979-05-27T00:32:00.999999+05:30
            odt4 = 1979-05-27 07:32:00z
            ldt1 = 1979-05-27t07:32:00
            ldt2 = 1979-05-27T00:32:00.1234567891
            ld = 2000-02-29
            leap = 2024-02-29
            lt = 07:32:00
            lt2 = 00:32:00.5
            """)
        let date = TOMLDate(year: 1979, month: 5, day: 27)
        #expect(table["odt1"] == .offsetDateTime(date, TOMLTime(hour: 7, minute: 32, second: 0), offsetMinutes: 0))
        #expect(table["odt2"] == .offsetDateTime(date, TOMLTime(hour: 0, minute: 32, second: 0), offsetMinutes: -420))
        #expect(table["odt3"] == .offsetDateTime(date, TOMLTime(hour: 0, minute: 32, second: 0, nanosecond: 999_999_000),
                                                 offsetMinutes: 330))
        #expect(table["odt4"] == table["odt1"])
        #expect(table["ldt1"] == .localDateTime(date, TOMLTime(hour: 7, minute: 32, second: 0)))
        #expect(table["ldt2"] == .localDateTime(date, TOMLTime(hour: 0, minute: 32, second: 0, nanosecond: 123_456_789)),
                "digits beyond nanoseconds are truncated")
        #expect(table["ld"] == .localDate(TOMLDate(year: 2000, month: 2, day: 29)))
        #expect(table["leap"] == .localDate(TOMLDate(year: 2024, month: 2, day: 29)))
        #expect(table["lt"] == .localTime(TOMLTime(hour: 7, minute: 32, second: 0)))
        #expect(table["lt2"]?.typeName == "local time")
        #expect("\(TOMLTime(hour: 0, minute: 32, second: 0, nanosecond: 500_000_000))" == "00:32:00.5")
        #expect("\(date)" == "1979-05-27")
        // A space after a date separates it from a time only when a time follows.
        #expect(try Self.parse("d = 1979-05-27 # a date") == TOMLTable(["d": .localDate(date)]))
        #expect(try Self.parse("d = 0000-01-01")["d"] == .localDate(TOMLDate(year: 0, month: 1, day: 1)))
    }

    @Test func arrays() throws {
        let table = try Self.parse("""
            empty = []
            mixed = [1, "two", 3.0, [4], {five = 5}, 1979-05-27]
            nested = [[1, 2], [[3]], []]
            multiline = [
              1, # one
              # a comment line
              2,
            ]
            trailing = [1,]
            """)
        #expect(table["empty"] == .array([]))
        #expect(table["mixed"] == .array([.integer(1), .string("two"), .float(3), .array([.integer(4)]),
                                          .table(TOMLTable(["five": .integer(5)])),
                                          .localDate(TOMLDate(year: 1979, month: 5, day: 27))]))
        #expect(table["nested"] == .array([.array([.integer(1), .integer(2)]), .array([.array([.integer(3)])]), .array([])]))
        #expect(table["multiline"] == .array([.integer(1), .integer(2)]))
        #expect(table["trailing"] == .array([.integer(1)]))
    }

    @Test func inlineTables() throws {
        let table = try Self.parse("""
            name = { first = "Tom", last = "Preston-Werner" }
            empty = {}
            dotted = { type.name = "pug", type.age = 3 }
            nested = { a = { b = [1, { c = {} }] } }
            points = [ { x = 1, y = 2 }, { x = 7 } ]
            lines = { a = [
              1,
            ] }
            """)
        #expect(table["name"] == .table(TOMLTable(["first": .string("Tom"), "last": .string("Preston-Werner")])))
        #expect(table["empty"] == .table(TOMLTable()))
        #expect(table["dotted"] == .table(TOMLTable(["type": .table(TOMLTable(["name": .string("pug"), "age": .integer(3)]))])))
        #expect(table["nested"]?.table?["a"]?.table?["b"]?.array?[1].table?["c"] == .table(TOMLTable()))
        #expect(table["points"]?.array?.count == 2)
        #expect(table["lines"] == .table(TOMLTable(["a": .array([.integer(1)])])), "newlines may stand inside an array value")
    }

    @Test func tablesAndArraysOfTables() throws {
        let table = try Self.parse("""
            top = 0
            [a.b.c]
            x = 1
            [a]          # defines a, only implied by [a.b.c] so far
            y = 2
            [ a . b . "d e" ]
            [fruit]
            apple.color = "red"
            apple.taste.sweet = true
            [fruit.apple.texture]  # a sub-table of a dotted-key table
            smooth = true
            [[fruits]]
            name = "apple"
            [fruits.physical]
            color = "red"
            [[fruits.varieties]]
            name = "red delicious"
            [[fruits.varieties]]
            name = "granny smith"
            [[fruits]]
            name = "banana"
            [[fruits.varieties]]
            name = "plantain"
            """)
        #expect(table.keys == ["top", "a", "fruit", "fruits"])
        #expect(table["a"]?.table?.keys == ["b", "y"])
        #expect(table["a"]?.table?["b"]?.table?.keys == ["c", "d e"])
        #expect(table["fruit"]?.table?["apple"]?.table?["texture"]?.table?["smooth"] == .boolean(true))
        let fruits = try #require(table["fruits"]?.array)
        #expect(fruits.count == 2)
        #expect(fruits[0].table?["physical"]?.table?["color"] == .string("red"))
        #expect(fruits[0].table?["varieties"]?.array?.compactMap { $0.table?["name"]?.string } == ["red delicious", "granny smith"])
        #expect(fruits[1].table?["varieties"]?.array?.count == 1)
        // Dotted keys may go through a table that headers only implied.
        #expect(try Self.parse("[a.b.c]\n[a]\nb.d = 1")["a"]?.table?["b"]?.table?.keys == ["c", "d"])
    }

    @Test func valueAccessors() throws {
        let table = try Self.parse("s = 'x'\ni = 3\nf = 1.5\nb = true\na = [1]\nt = {}")
        #expect(table["s"]?.string == "x" && table["s"]?.int == nil)
        #expect(table["i"]?.int == 3 && table["i"]?.integer == 3 && table["i"]?.float == nil)
        #expect(table["f"]?.float == 1.5 && table["b"]?.bool == true)
        #expect(table["a"]?.array == [.integer(1)] && table["t"]?.table == TOMLTable())
        #expect(table.entries.map(\.key) == ["s", "i", "f", "b", "a", "t"])
        #expect(table["i"]?.typeNameWithArticle == "an integer" && table["s"]?.typeNameWithArticle == "a string")
    }

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

/// The parser against a real peer: Python 3.11's `tomllib` (python3 is on the development
/// machine and on Debian 12 CI). Each document is parsed by both; a valid one must give
/// the same value, converted on both sides to one canonical JSON form (toml-test's tagged
/// values: `{"type": "integer", "value": "42"}`; floats by their bit pattern, NaN as `nan`;
/// date-times in RFC 3339 with microseconds, as far as Python's `datetime` goes), and an
/// invalid one must be refused by both.
///
/// Left out on purpose, where the two differ by design: integers beyond 64 bits (Python's
/// are unbounded; TOML lets an implementation refuse them), the year 0000 (beyond Python's
/// `datetime`), a byte order mark (skipped here), nesting beyond 128 levels (refused here).
@Suite struct TOMLDifferentialTests {
    /// A document and whether it is valid TOML 1.0.0.
    struct Document: Sendable, CustomTestStringConvertible {
        var bytes: [UInt8]
        var valid: Bool
        var testDescription: String { String(decoding: bytes, as: UTF8.self).debugDescription }
    }

    static func valid(_ text: String) -> Document { Document(bytes: Array(text.utf8), valid: true) }
    static func invalid(_ text: String) -> Document { Document(bytes: Array(text.utf8), valid: false) }

    static let documents: [Document] = [
        // Comments, whitespace, keys.
        valid("# c\n\n\ta = 1 # trailing\r\nb=2\n  # indented\n"),
        valid(""),
        valid("bare_key-1 = 1\n1234 = 2\n-_- = 3\n\"quoted key\" = 4\n'lit \"key\"' = 5\n\"\" = 6"),
        valid("a . \"b.c\" . 'd' = 1\na.e = 2\n3.14159 = \"pi\""),
        valid("\"\\u00e9\" = 1\n\"e\\u0301\" = 2\n'ü' = 3\n'x\\y' = 4"),
        valid("true = 1\nfalse = 2\ninf = 3\nnan = 4\n\"[x]\" = 5"),
        // Strings.
        valid(#"s = "tab\t quote\" bs\\ \b\f\n\r \u00E9 \U0001F600 \u0000 \u007F""#),
        valid("s = \"a\tb\"\nl = 'a\tb'\n# tab\tin a comment\u{7E} é"),
        valid("l = 'C:\\Users\\no\\escapes'\ne = ''\nq = '\"'"),
        valid("s = \"\"\"\nRoses\nViolets\"\"\"\nt = \"\"\"\n\n two\"\"\""),
        valid("s = \"\"\"\\\n   The quick \\\n\n  brown \\   \n  fox.\\\n  \"\"\""),
        valid("s = \"\"\"\"one\" \"\"two\"\" \"\"\"\"\nt = \"\"\"x\"\"\"\"\"\nu = \"\"\"\"\"\"\"\""),
        valid("s = '''\nraw \\n ''q'' '''\nt = ''''''''\nu = '''x'''''"),
        valid("s = \"\"\"a\r\nb\\\r\n  c\"\"\"\r\nt = '''\r\nx\r\n'''"),
        // Integers.
        valid("a = [+99, 42, 0, -17, +0, -0, 1_000, 5_349_221, 1_2_3]"),
        valid("a = [0xDEADBEEF, 0xdead_beef, 0x0, 0o01234567, 0o755, 0b11010110, 0b0_1]"),
        valid("max = 9223372036854775807\nmin = -9223372036854775808\nhex = 0x7FFFFFFFFFFFFFFF\noct = 0o777777777777777777777\nbin = 0b111"),
        // Floats.
        valid("a = [+1.0, 3.1415, -0.01, 5e+22, 1e06, -2E-2, 6.626e-34, 224_617.445_991_228, 1e1_0, 0e0, 0.0, -0.0, +0.0]"),
        valid("a = [inf, +inf, -inf, nan, +nan, -nan]\nb = 1e400\nc = 4.9e-324\nd = 1.7976931348623157e308\ne = 0.1"),
        valid("a = 123456789012345678901234567890.5\nb = 1.000000000000000000001"),
        // Booleans and date-times.
        valid("t = true\nf = false\na = [true, false]"),
        valid("a = 1979-05-27T07:32:00Z\nb = 1979-05-27T00:32:00-07:00\nc = 1979-05-27T00:32:00.999999+05:30\nd = 1979-05-27 07:32:00z"),
        valid("a = 1979-05-27t07:32:00\nb = 1979-05-27T00:32:00.1234567891\nc = 1979-05-27T00:32:00.5\nd = 2000-02-29\ne = 2024-02-29"),
        valid("a = 07:32:00\nb = 00:32:00.000001\nc = 23:59:59.9999999\nd = 1979-05-27 # date\ne = 1979-05-27T07:32:00-00:00\nf = 9999-12-31T23:59:59+23:59"),
        // Arrays.
        valid("e = []\nm = [1, \"two\", 3.0, [4], {five = 5}, 1979-05-27, true]\nn = [[1, 2], [[3]], []]"),
        valid("a = [\n  1, # one\n  # a line\n\n  2,\n]\nb = [1,]\nc = [ \"x\" , 'y' ]\nd = [\n]"),
        // Inline tables.
        valid("n = { first = \"Tom\", last = \"Preston-Werner\" }\ne = {}\nd = { type.name = \"pug\", type.age = 3 }"),
        valid("n = { a = { b = [1, { c = {} }] } }\np = [ { x = 1, y = 2 }, { x = 7 } ]\nl = { a = [\n1,\n] }"),
        valid("t = {\"a b\" = 1, 'c' = 2, d . e = 3}"),
        // Tables and arrays of tables.
        valid("top = 0\n[a.b.c]\nx = 1\n[a]\ny = 2\n[ a . b . \"d e\" ]\n[x.y.z.w]\n[x]"),
        valid("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true"),
        valid("[[f]]\nname = \"apple\"\n[f.physical]\ncolor = \"red\"\n[[f.v]]\nn = 1\n[[f.v]]\nn = 2\n[[f]]\nname = \"banana\"\n[[f.v]]\nn = 3"),
        valid("[a.b.c]\n[a]\nb.d = 1"),
        valid("[[a]]\nb.c = 1\n[[a]]\nb.c = 2\n[a.b.x]\n[[a.d]]"),
        valid("[a]\n[[a.b]]\n[[a.b]]\nx = 1\n[a.c]"),
        valid("a.b.c = 1\na.b.d = 2\n[a.b.e]\n[a.x]"),
        valid("[\"quoted.header\"]\n['lit']\n[\"\"]\n[\"\".x]"),
        valid("[t]\narr = [{a = 1}]\n[[u]]\n[u.v]\n[[u]]\n[u.v]"),
        valid(Self.config),
        // Invalid: statements and keys.
        invalid("a = 1\na : 2"), invalid("= 1"), invalid("a b = 1"), invalid("a = "), invalid("a =\n1"),
        invalid("a = 1 b = 2"), invalid("a. = 1"), invalid(".a = 1"), invalid("\"\"\"k\"\"\" = 1"), invalid("a = 1\rb = 2"),
        invalid("# bad \u{7F}"), invalid("# bad \u{1}"), invalid("a = 1 # \r x"),
        // Headers.
        invalid("[a"), invalid("[]"), invalid("[[a]"), invalid("[a]]"), invalid("[ [a] ]"), invalid("[a] b = 1"),
        invalid("[a.]"), invalid("[[]]"),
        // Redefinitions.
        invalid("a = 1\na = 2"), invalid("[a]\nb = 1\n[a]"), invalid("a.b = 1\n[a]"), invalid("[a]\nb.c = 1\n[a.b]"),
        invalid("[a.b.c]\nz = 9\n[a]\nb.c.t = 1"), invalid("[a]\nb.c = 1\n[x]\n[a]"), invalid("a = {}\n[a.b]"),
        invalid("a = {b = 1}\na.c = 2"), invalid("a = [1]\n[[a]]"), invalid("a = [{}]\n[a.b]"), invalid("[[a]]\n[a]"),
        invalid("[a]\n[[a]]"), invalid("a = 1\n[a.b]"), invalid("a = 1\na.b = 2"), invalid("a = {b = 1, b = 2}"),
        invalid("a = {b.c = 1, b = 2}"), invalid("a = {b = {c = 1}, b.d = 2}"), invalid("a.b = 1\na.b.c = 2"),
        invalid("[a]\nb = 1\n[a.b]"), invalid("a = [{b = 1}]\n[[a.c]]"), invalid("[[a.b]]\n[a]\nb.c = 1"),
        invalid("[fruit]\napple.color = \"red\"\n[fruit.apple]"),
        // Inline tables and arrays.
        invalid("a = {x = 1,}"), invalid("a = {x = 1\n}"), invalid("a = {\nx = 1}"), invalid("a = {x = 1 # c\n}"),
        invalid("a = [1 2]"), invalid("a = [1,,2]"), invalid("a = [,]"), invalid("a = [1"), invalid("a = {,}"),
        // Strings.
        invalid("a = \"abc"), invalid("a = \"abc\nd\""), invalid("a = \"\\x41\""), invalid("a = \"\\e\""), invalid("a = \"\\ \""),
        invalid("a = \"\\u12\""), invalid("a = \"\\uD800\""), invalid("a = \"\\U00110000\""), invalid("a = \"x\u{1}\""),
        invalid("a = 'x\u{0}'"), invalid("a = 'line\nbreak'"), invalid("a = \"\"\"x\"\"\"\"\"\""), invalid("a = '''x''''''"),
        invalid("a = \"\"\"x\\ y\"\"\""), invalid("a = \"\"\"\nx\u{8}\"\"\""), invalid("a = '''\nx\ry'''"), invalid("a = '''x"),
        invalid("a = \"\u{7F}\""),
        // Numbers.
        invalid("a = 01"), invalid("a = 1__0"), invalid("a = 1_"), invalid("a = _1"), invalid("a = 0x_1"), invalid("a = +0x1"),
        invalid("a = -0o1"), invalid("a = 0o8"), invalid("a = 0b"), invalid("a = 0b2"), invalid("a = 0X1"), invalid("a = 1-2"),
        invalid("a = 1."), invalid("a = .5"), invalid("a = 1.e5"), invalid("a = 1e"), invalid("a = 1e_5"), invalid("a = 00.5"),
        invalid("a = 1.5.3"), invalid("a = infinity"), invalid("a = NaN"), invalid("a = Inf"), invalid("a = +-1"),
        invalid("a = tru"), invalid("a = truee"), invalid("a = TRUE"), invalid("a = 1_000_"), invalid("a = 0_1"),
        // Dates and times.
        invalid("a = 1979-02-29"), invalid("a = 1900-02-29"), invalid("a = 1979-04-31"), invalid("a = 1979-13-01"),
        invalid("a = 1979-00-01"), invalid("a = 1979-05-00"), invalid("a = 1979-5-27"), invalid("a = 1979-05-27T24:00:00"),
        invalid("a = 1979-05-27T07:60:00"), invalid("a = 1979-05-27T07:32:60"), invalid("a = 1979-05-27T07:32"),
        invalid("a = 1979-05-27T"), invalid("a = 1979-05-27 07:3"), invalid("a = 1979-05-27T07:32:00."),
        invalid("a = 1979-05-27T07:32:00+24:00"), invalid("a = 1979-05-27T07:32:00+0700"), invalid("a = 1979-05-27T07:32:00Zx"),
        invalid("a = 07:32"), invalid("a = 07:32:00Z"), invalid("a = 7:32:00"), invalid("a = 1979-05-27T7:32:00"),
        invalid("a = 1979-05-27_07:32:00"), invalid("a = 1979-05-27T07:32:00+07"),
        // Encoding: invalid UTF-8 (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF, truncated).
        Document(bytes: [0x61, 0x20, 0x3D, 0x20, 0x22, 0xFF, 0x22], valid: false),
        Document(bytes: [0x23, 0x20, 0xC0, 0xAF], valid: false),
        Document(bytes: [0x61, 0x3D, 0x22, 0xED, 0xA0, 0x80, 0x22], valid: false),
        Document(bytes: [0x61, 0x3D, 0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], valid: false),
        Document(bytes: [0x61, 0x3D, 0x22, 0xC3], valid: false),
        // The inputs on which toml++ aborted.
        Document(bytes: Array("vcpus = 0\nunknown = 1\n[ = 0\nunknown = 1\n[networ]]\nnic_slots =networ]]\nnic_slots = \"x\"\n".utf8),
                 valid: false),
        Document(bytes: Array("dt = 1979-05-27T".utf8) + [0x9D] + Array("7:32:00Z\n".utf8), valid: false),
    ]

    /// A full config.toml.
    static let config = """
        qemu = "/usr/bin/qemu-system-x86_64"
        kernel = ""
        accelerator = "tcg"   # auto | kvm | tcg
        vcpus = 2
        memory_mib = 512
        state_dir = "/run/qemubox"
        guest_debug = true

        [network]
        networks = ["bridge", "macvlan"]
        bin_dirs = [
          "/opt/cni/bin",
          "/usr/lib/cni",
        ]
        nic_slots = 2

        [jail]
        enabled = true
        first_id = 1_500_000_000
        seccomp = "log"
        """

    /// Reads the documents (a JSON array of base64 strings, file named by argv[1]) and prints
    /// per document `OK <canonical JSON>` or `ERR <message>`.
    static let python = #"""
        import base64, datetime, json, math, struct, sys
        try:
            import tomllib
        except ImportError as e:
            sys.exit(f"python3 lacks tomllib (Python 3.11 or later is required): {e}")

        def clock(v):
            s = f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            return s + (f".{v.microsecond:06d}" if v.microsecond else "")

        def tag(v):
            if isinstance(v, dict): return {k: tag(x) for k, x in v.items()}
            if isinstance(v, list): return [tag(x) for x in v]
            if isinstance(v, bool): return {"type": "bool", "value": "true" if v else "false"}
            if isinstance(v, int): return {"type": "integer", "value": str(v)}
            if isinstance(v, float):
                s = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else struct.pack(">d", v).hex()
                return {"type": "float", "value": s}
            if isinstance(v, str): return {"type": "string", "value": v}
            if isinstance(v, datetime.datetime):
                s = f"{v.year:04d}-{v.month:02d}-{v.day:02d}T" + clock(v)
                if v.tzinfo is None: return {"type": "datetime-local", "value": s}
                offset = int(v.utcoffset().total_seconds() // 60)
                sign = "+" if offset >= 0 else "-"
                return {"type": "datetime", "value": s + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"}
            if isinstance(v, datetime.date): return {"type": "date-local", "value": f"{v.year:04d}-{v.month:02d}-{v.day:02d}"}
            if isinstance(v, datetime.time): return {"type": "time-local", "value": clock(v)}
            raise TypeError(f"unexpected {type(v)}")

        with open(sys.argv[1]) as f:
            documents = [base64.b64decode(d) for d in json.load(f)]
        for document in documents:
            try:
                value = tomllib.loads(document.decode("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                print("ERR " + str(e).replace("\n", " "))
                continue
            print("OK " + json.dumps(tag(value), sort_keys=True, separators=(",", ":")))
        """#

    struct PythonFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs the script on `documents`: one line per document.
    static func tomllib(_ documents: [[UInt8]]) throws -> [String] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qemubox-toml-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("documents.json")
        try JSONSerialization.data(withJSONObject: documents.map { Data($0).base64EncodedString() }).write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", python, input.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PythonFailure(description: "python3 (3.11 or later, with tomllib) is required for this test; "
                + "it exited with status \(process.terminationStatus): \(output)")
        }
        return output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func agreesWithPythonTomllib() throws {
        let documents = Self.documents
        let answers = try Self.tomllib(documents.map(\.bytes))
        try #require(answers.count == documents.count, "tomllib answered \(answers.count) times for \(documents.count) documents")
        var agreed = (valid: 0, invalid: 0)
        for (document, answer) in zip(documents, answers) {
            let ours: String
            do {
                ours = "OK " + Self.canonical(.table(try TOMLParser.parse(document.bytes)))
            } catch {
                ours = "ERR \(error)"
            }
            #expect(ours.hasPrefix("OK") == document.valid, "\(document.testDescription): we said \(ours)")
            #expect(answer.hasPrefix("OK") == document.valid, "\(document.testDescription): tomllib said \(answer)")
            if ours.hasPrefix("OK") && answer.hasPrefix("OK") {
                #expect(ours == answer, "\(document.testDescription)")
                if ours == answer { agreed.valid += 1 }
            } else if !ours.hasPrefix("OK") && !answer.hasPrefix("OK") {
                agreed.invalid += 1
            }
        }
        #expect(agreed.valid == documents.filter(\.valid).count)
        #expect(agreed.invalid == documents.filter { !$0.valid }.count)
    }

    // MARK: - The canonical form

    /// toml-test's tagged JSON, keys sorted by code point, as Python's `json.dumps(sort_keys=True,
    /// separators=(",", ":"))` prints it (non-ASCII escaped, lowercase hex, surrogate pairs).
    static func canonical(_ value: TOMLValue) -> String {
        switch value {
        case .string(let text): tagged("string", text)
        case .integer(let integer): tagged("integer", String(integer))
        case .float(let float):
            tagged("float", float.isNaN ? "nan" : float.isInfinite ? (float > 0 ? "inf" : "-inf")
                : pad(String(float.bitPattern, radix: 16), 16))
        case .boolean(let bool): tagged("bool", bool ? "true" : "false")
        case .offsetDateTime(let date, let time, let offset):
            tagged("datetime", "\(date)T\(clock(time))\(offset < 0 ? "-" : "+")"
                + "\(pad(String(abs(offset) / 60), 2)):\(pad(String(abs(offset) % 60), 2))")
        case .localDateTime(let date, let time): tagged("datetime-local", "\(date)T\(clock(time))")
        case .localDate(let date): tagged("date-local", "\(date)")
        case .localTime(let time): tagged("time-local", clock(time))
        case .array(let elements): "[" + elements.map(canonical).joined(separator: ",") + "]"
        case .table(let table):
            "{" + table.entries
                .sorted { $0.key.unicodeScalars.map(\.value).lexicographicallyPrecedes($1.key.unicodeScalars.map(\.value)) }
                .map { json($0.key) + ":" + canonical($0.value) }.joined(separator: ",") + "}"
        }
    }

    static func tagged(_ type: String, _ value: String) -> String { "{\"type\":\"\(type)\",\"value\":\(json(value))}" }

    static func pad(_ digits: String, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Python's time format with microseconds (its `datetime` truncates beyond them).
    static func clock(_ time: TOMLTime) -> String {
        let micro = time.nanosecond / 1000
        return "\(pad(String(time.hour), 2)):\(pad(String(time.minute), 2)):\(pad(String(time.second), 2))"
            + (micro == 0 ? "" : "." + pad(String(micro), 6))
    }

    /// A JSON string as Python's `json.dumps(ensure_ascii=True)` writes it.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{8}": out += "\\b"
            case "\u{C}": out += "\\f"
            case " "..."~": out.unicodeScalars.append(scalar)
            default:
                func unit(_ value: UInt32) -> String { "\\u" + pad(String(value, radix: 16), 4) }
                if scalar.value > 0xFFFF {
                    let value = scalar.value - 0x10000
                    out += unit(0xD800 + (value >> 10)) + unit(0xDC00 + (value & 0x3FF))
                } else {
                    out += unit(scalar.value)
                }
            }
        }
        return out + "\""
    }
}
