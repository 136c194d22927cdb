import Foundation
import QemuboxKit
import Testing

/// qemubox's TOML 1.0.0 parser (`Sources/QemuboxKit/TOML/`): every kind of valid document,
/// invalid ones with the line and column of their error, the limits, the inputs that
/// crashed toml++ (`TOMLParserTests+Invalid.swift`), and a differential run against Python's `tomllib`
/// (`TOMLDifferentialTests`).
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
}
