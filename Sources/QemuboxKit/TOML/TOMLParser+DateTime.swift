extension TOMLParser {
    /// A date-time, local date or local time if one starts here (four digits and `-`, or
    /// two digits and `:`), else nil without moving.
    ///
    /// RFC 3339 with TOML's relaxations: `T`, `t` or a space between date and time;
    /// seconds required, a fraction of any length (truncated to nanoseconds); the offset
    /// `Z`, `z` or `±HH:MM`; local forms without the offset, the time or the date.
    /// Months, days (leap years included), hours (0…23), minutes and seconds (0…59) and
    /// offsets (hours 0…23) are checked.
    mutating func parseDateTimeIfPresent() throws(TOMLError) -> TOMLValue? {
        let isDate = (0..<4).allSatisfy { peek($0).map(ASCII.isDigit) ?? false } && peek(4) == ASCII.minus
        let isTime = (0..<2).allSatisfy { peek($0).map(ASCII.isDigit) ?? false } && peek(2) == ASCII.colon
        if isTime { return .localTime(try parseTime()) }
        guard isDate else { return nil }
        let date = try parseDate()
        switch peek() {
        case UInt8(ascii: "T"), UInt8(ascii: "t"):
            pos += 1
        case ASCII.space where peek(1).map(ASCII.isDigit) ?? false:
            // A space separates a date and a time only when a time follows.
            pos += 1
        default:
            return .localDate(date)
        }
        let time = try parseTime()
        switch peek() {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            pos += 1
            return .offsetDateTime(date, time, offsetMinutes: 0)
        case ASCII.plus, ASCII.minus:
            let start = pos
            let negative = peek() == ASCII.minus
            pos += 1
            guard let hours = digits(2), peek() == ASCII.colon else {
                throw error("a time offset is Z or ±HH:MM", at: start)
            }
            pos += 1
            guard let minutes = digits(2) else { throw error("a time offset is Z or ±HH:MM", at: start) }
            guard hours <= 23, minutes <= 59 else {
                throw error("time offset \(String(decoding: bytes[start..<pos], as: UTF8.self)) is out of range", at: start)
            }
            let offset = hours * 60 + minutes
            return .offsetDateTime(date, time, offsetMinutes: negative ? -offset : offset)
        default:
            return .localDateTime(date, time)
        }
    }

    /// `YYYY-MM-DD`, validated.
    private mutating func parseDate() throws(TOMLError) -> TOMLDate {
        let start = pos
        guard let year = digits(4), peek() == ASCII.minus else { throw error("a date is YYYY-MM-DD", at: start) }
        pos += 1
        let monthStart = pos
        guard let month = digits(2), peek() == ASCII.minus else { throw error("a date is YYYY-MM-DD", at: start) }
        pos += 1
        let dayStart = pos
        guard let day = digits(2) else { throw error("a date is YYYY-MM-DD", at: start) }
        if let next = peek(), ASCII.isDigit(next) { throw error("a date is YYYY-MM-DD", at: start) }
        guard (1...12).contains(month) else { throw error("month \(month) is out of range (01…12)", at: monthStart) }
        let days = TOMLDate.daysInMonth(month, year: year)
        guard (1...days).contains(day) else {
            let why = month == 2 && day == 29 ? "\(year) is not a leap year" : "month \(month) has \(days) days"
            throw error("day \(day) is out of range: \(why)", at: dayStart)
        }
        return TOMLDate(year: year, month: month, day: day)
    }

    /// `HH:MM:SS` with an optional fraction, validated.
    private mutating func parseTime() throws(TOMLError) -> TOMLTime {
        let start = pos
        guard let hour = digits(2), peek() == ASCII.colon else { throw error("a time is HH:MM:SS", at: start) }
        pos += 1
        let minuteStart = pos
        guard let minute = digits(2) else { throw error("a time is HH:MM:SS", at: start) }
        guard peek() == ASCII.colon else { throw error("a time is HH:MM:SS (the seconds are required)", at: start) }
        pos += 1
        let secondStart = pos
        guard let second = digits(2) else { throw error("a time is HH:MM:SS", at: start) }
        var nanosecond = 0
        if peek() == ASCII.dot {
            pos += 1
            var count = 0
            while let byte = peek(), ASCII.isDigit(byte) {
                if count < 9 { nanosecond = nanosecond * 10 + Int(byte - 0x30) }
                count += 1
                pos += 1
            }
            guard count > 0 else { throw error("a '.' in a time must be followed by digits", at: pos) }
            for _ in min(count, 9)..<9 { nanosecond *= 10 }
        }
        if let next = peek(), ASCII.isDigit(next) { throw error("a time is HH:MM:SS", at: start) }
        guard hour <= 23 else { throw error("hour \(hour) is out of range (00…23)", at: start) }
        guard minute <= 59 else { throw error("minute \(minute) is out of range (00…59)", at: minuteStart) }
        guard second <= 59 else { throw error("second \(second) is out of range (00…59)", at: secondStart) }
        return TOMLTime(hour: hour, minute: minute, second: second, nanosecond: nanosecond)
    }

    /// Exactly `count` ASCII digits as a number (moving past them), else nil without moving.
    private mutating func digits(_ count: Int) -> Int? {
        var value = 0
        for offset in 0..<count {
            guard let byte = peek(offset), ASCII.isDigit(byte) else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        pos += count
        return value
    }
}
