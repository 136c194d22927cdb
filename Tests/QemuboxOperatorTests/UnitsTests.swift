@testable import QemuboxOperator
import Testing

/// Duration and size arguments, and the human renderings.
struct UnitsTests {
    @Test func durations() {
        #expect(Units.parseDuration("90s") == 90)
        #expect(Units.parseDuration("15m") == 900)
        #expect(Units.parseDuration("1h30m") == 5400)
        #expect(Units.parseDuration("7d") == 604_800.0)
        #expect(Units.parseDuration("42") == 42)
        #expect(Units.parseDuration("5x") == nil)
        #expect(Units.parseDuration("m") == nil)
        #expect(Units.parseDuration("10m5") == nil)
        #expect(Units.duration(42) == "42s")
        #expect(Units.duration(4000) == "1h6m")
        #expect(Units.duration(90000) == "1d1h")
    }

    @Test func sizes() {
        #expect(Units.parseSize("512") == 512)
        #expect(Units.parseSize("500M") == 500 << 20)
        #expect(Units.parseSize("10G") == 10 << 30)
        #expect(Units.parseSize("1.5GiB") == 3 << 29)
        #expect(Units.parseSize("2kb") == 2048)
        #expect(Units.parseSize("-1M") == nil)
        #expect(Units.parseSize("10X") == nil)
        #expect(Units.bytes(512) == "512 B")
        #expect(Units.bytes(1536) == "1.5 KiB")
        #expect(Units.bytes(300 << 20) == "300 MiB")
    }
}
