import QemuboxAPI
import Testing

@Suite("guest stream headers")
struct GuestStreamHeaderTests {
    @Test("headers round-trip through their line")
    func roundTrip() throws {
        for header in [GuestStreamHeader.ttrpc, .stdio(key: "ctr1/stdout"), .stdio(key: "a.b-c_d/e1/stdin")] {
            #expect(try GuestStreamHeader.parse(header.line) == header)
            #expect(header.line.hasSuffix("\n"))
            #expect(header.bytes.count == header.line.utf8.count)
        }
        #expect(GuestStreamHeader.ttrpc.line == "qemubox ttrpc\n")
        #expect(GuestStreamHeader.stdio(key: "k").line == "qemubox stdio k\n")
    }

    @Test("malformed headers are refused with the offending text",
          arguments: ["", "qemubox", "qemubox ttrpc extra", "qemubox stdio", "qemubox stdio ", "qemubox stdio a b",
                      "qemubox stdio k\u{7f}", "qemubox shell", "QEMUBOX ttrpc", "ttrpc", "qemubox  ttrpc"])
    func malformed(_ line: String) {
        #expect(throws: GuestStreamHeader.ParseError.self) { try GuestStreamHeader.parse(line) }
    }

    @Test("over-long headers and keys are refused")
    func limits() {
        let long = "qemubox stdio " + String(repeating: "k", count: GuestStreamHeader.maxLength)
        #expect(throws: GuestStreamHeader.ParseError.self) { try GuestStreamHeader.parse(long) }
        #expect(!GuestStreamHeader.isValidKey(String(repeating: "k", count: 257)))
        #expect(GuestStreamHeader.isValidKey(String(repeating: "k", count: 256)))
        #expect(!GuestStreamHeader.isValidKey("with space"))
        #expect(!GuestStreamHeader.isValidKey("é"))
    }
}
