/// A TOML 1.0.0 value, as ``TOMLParser`` produces it.
///
/// Tables and arrays hold further values; every other case is a leaf. Date-times
/// are kept as validated fields (``TOMLDate``, ``TOMLTime``), not converted to
/// `Date`: a local date-time has no time zone, and a config file needs the text's
/// meaning, not an instant.
///
/// ```swift
/// let table = try TOMLParser.parse("vcpus = 2\n[jail]\nseccomp = \"log\"")
/// table["vcpus"]?.integer                 // 2
/// table["jail"]?.table?["seccomp"]?.string // "log"
/// ```
package enum TOMLValue: Sendable, Equatable {
    /// A string (basic, literal or either multi-line form), escapes resolved.
    case string(String)
    /// A signed 64-bit integer (decimal, hexadecimal, octal or binary in the text).
    case integer(Int64)
    /// An IEEE 754 binary64 float, including `inf` and `nan`.
    case float(Double)
    /// `true` or `false`.
    case boolean(Bool)
    /// A date and time with an offset from UTC (`1979-05-27T07:32:00-07:00`).
    case offsetDateTime(TOMLDate, TOMLTime, offsetMinutes: Int)
    /// A date and time without an offset (`1979-05-27T07:32:00`).
    case localDateTime(TOMLDate, TOMLTime)
    /// A date without a time (`1979-05-27`).
    case localDate(TOMLDate)
    /// A time of day without a date (`07:32:00.999`).
    case localTime(TOMLTime)
    /// An array; its elements may be of different types.
    case array([TOMLValue])
    /// A table (a `[header]` section, a dotted key's parent, an inline table or an
    /// element of an array of tables).
    case table(TOMLTable)

    /// The name of the value's type, for messages: `string`, `integer`, `float`,
    /// `boolean`, `offset date-time`, `local date-time`, `local date`, `local time`,
    /// `array` or `table`.
    package var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .offsetDateTime: "offset date-time"
        case .localDateTime: "local date-time"
        case .localDate: "local date"
        case .localTime: "local time"
        case .array: "array"
        case .table: "table"
        }
    }

    /// ``typeName`` with its indefinite article ("an integer", "a string").
    package var typeNameWithArticle: String {
        let name = typeName
        return (name.first.map { "aeiou".contains($0) } ?? false ? "an " : "a ") + name
    }

    /// The string, if this is one.
    package var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The integer, if this is one.
    package var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The integer as an `Int`, if this is an integer that fits.
    package var int: Int? {
        integer.flatMap { Int(exactly: $0) }
    }

    /// The float, if this is one (an integer is not converted).
    package var float: Double? {
        if case .float(let value) = self { return value }
        return nil
    }

    /// The boolean, if this is one.
    package var bool: Bool? {
        if case .boolean(let value) = self { return value }
        return nil
    }

    /// The elements, if this is an array (also an array of tables).
    package var array: [TOMLValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The table, if this is one.
    package var table: TOMLTable? {
        if case .table(let value) = self { return value }
        return nil
    }
}

/// A TOML table: keys in the order they first appeared in the text, each with its value.
///
/// Keys are compared by their Unicode scalars, not by Swift's canonical equivalence:
/// `"é"` (U+00E9) and `"e\u{301}"` are two different keys, as TOML requires. Two
/// tables are equal when they hold the same keys with equal values, in any order.
package struct TOMLTable: Sendable, Equatable {
    /// The keys, in the order of the text.
    package private(set) var keys: [String] = []
    private var storage: [TOMLKey: TOMLValue] = [:]

    /// An empty table.
    package init() {}

    /// A table of `keys` (distinct, in order), each with its value in `storage`.
    init(keys: [String], storage: [TOMLKey: TOMLValue]) {
        self.keys = keys
        self.storage = storage
    }

    /// A table of `entries`, in their order; a later duplicate key replaces the earlier value.
    package init(_ entries: KeyValuePairs<String, TOMLValue>) {
        for (key, value) in entries { self[key] = value }
    }

    /// The number of keys.
    package var count: Int { keys.count }

    /// Whether the table has no keys.
    package var isEmpty: Bool { keys.isEmpty }

    /// The value of `key`, nil when absent; setting a new key appends it, setting nil removes it.
    package subscript(key: String) -> TOMLValue? {
        get { storage[TOMLKey(key)] }
        set {
            let exact = TOMLKey(key)
            switch (storage[exact] != nil, newValue) {
            case (false, .some(let value)):
                keys.append(key)
                storage[exact] = value
            case (true, .some(let value)):
                storage[exact] = value
            case (true, .none):
                storage[exact] = nil
                keys.removeAll { TOMLKey($0) == exact }
            case (false, .none):
                break
            }
        }
    }

    /// The entries, in the order of the text.
    package var entries: [(key: String, value: TOMLValue)] {
        keys.compactMap { key in storage[TOMLKey(key)].map { (key, $0) } }
    }

    /// The same keys with equal values, in any order.
    package static func == (lhs: TOMLTable, rhs: TOMLTable) -> Bool {
        lhs.storage == rhs.storage
    }
}

/// A key compared and hashed by its UTF-8 bytes (so by Unicode scalars), unlike `String`.
struct TOMLKey: Hashable, Sendable {
    /// The key.
    let string: String

    /// Wraps `string`.
    init(_ string: String) { self.string = string }

    /// The same scalars.
    static func == (lhs: TOMLKey, rhs: TOMLKey) -> Bool {
        lhs.string.utf8.elementsEqual(rhs.string.utf8)
    }

    /// Hashes the UTF-8 bytes.
    func hash(into hasher: inout Hasher) {
        hasher.combine(string.utf8.count)
        for byte in string.utf8 { hasher.combine(byte) }
    }
}

/// A calendar date of a TOML date-time or local date (validated: month 1…12, day within
/// the month, February 29 only in leap years).
package struct TOMLDate: Sendable, Hashable, CustomStringConvertible {
    /// 0…9999.
    package var year: Int
    /// 1…12.
    package var month: Int
    /// 1…31, within the month.
    package var day: Int

    /// A date; the caller checks the ranges (``TOMLParser`` does).
    package init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// RFC 3339: `YYYY-MM-DD`.
    package var description: String {
        "\(TOMLDate.pad(year, 4))-\(TOMLDate.pad(month, 2))-\(TOMLDate.pad(day, 2))"
    }

    /// Whether `year` is a Gregorian leap year.
    package static func isLeapYear(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    /// Days in `month` (1…12) of `year`; 0 for a month out of range.
    package static func daysInMonth(_ month: Int, year: Int) -> Int {
        switch month {
        case 1, 3, 5, 7, 8, 10, 12: 31
        case 4, 6, 9, 11: 30
        case 2: isLeapYear(year) ? 29 : 28
        default: 0
        }
    }

    /// `value` in decimal, zero-padded to `width` digits.
    static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// A time of day of a TOML date-time or local time (validated: hour 0…23, minute and
/// second 0…59; a fraction beyond nanoseconds is truncated, as the spec allows).
package struct TOMLTime: Sendable, Hashable, CustomStringConvertible {
    /// 0…23.
    package var hour: Int
    /// 0…59.
    package var minute: Int
    /// 0…59 (no leap second).
    package var second: Int
    /// 0…999,999,999: the fraction of the second.
    package var nanosecond: Int

    /// A time; the caller checks the ranges (``TOMLParser`` does).
    package init(hour: Int, minute: Int, second: Int, nanosecond: Int = 0) {
        self.hour = hour
        self.minute = minute
        self.second = second
        self.nanosecond = nanosecond
    }

    /// RFC 3339: `HH:MM:SS`, then the fraction without trailing zeros when it is not zero.
    package var description: String {
        var text = "\(TOMLDate.pad(hour, 2)):\(TOMLDate.pad(minute, 2)):\(TOMLDate.pad(second, 2))"
        if nanosecond != 0 {
            var fraction = TOMLDate.pad(nanosecond, 9)
            while fraction.last == "0" { fraction.removeLast() }
            text += "." + fraction
        }
        return text
    }
}

/// A TOML document that could not be parsed: where (1-based line and column; the column
/// counts Unicode scalars, a tab is one) and why.
///
/// ```swift
/// do { _ = try TOMLParser.parse("a = \n") } catch {
///     print("config.toml:\(error)")   // config.toml:1:5: expected a value
/// }
/// ```
package struct TOMLError: Error, Sendable, Hashable, CustomStringConvertible {
    /// 1-based line.
    package var line: Int
    /// 1-based column, in Unicode scalars.
    package var column: Int
    /// What is wrong, without the position.
    package var message: String

    /// An error at `line`:`column`.
    package init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// `LINE:COLUMN: MESSAGE`.
    package var description: String { "\(line):\(column): \(message)" }
}
