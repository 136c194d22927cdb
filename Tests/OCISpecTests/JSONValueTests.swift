import Foundation
import OCISpec
import Testing
import TestSupport

@Suite("JSONValue")
struct JSONValueTests {
    @Test("any document round-trips with numbers exact", arguments: [
        #"[0, -1, 1.0, -0, 1e2, 2.5E-3, 1e300, 9223372036854775807, 9223372036854775808, 18446744073709551615, -9223372036854775808]"#,
        #"{"a": {"b": [[], {}, [null, true, false]], "c": "\u0000\u001f\t\"\\/"}, "": "empty key", "é": "ü"}"#,
        #""just a string""#,
        #"null"#,
    ])
    func roundTrip(document: String) throws {
        let value = try JSONValue.parse(Data(document.utf8))
        let encoded = try OCIJSON.encode(value)
        #expect(try RefJSON.parse(encoded) == RefJSON.parse(Data(document.utf8)))
        #expect(try JSONValue.parse(encoded) == value)
    }

    @Test("integers decode to the exact case")
    func integerCases() throws {
        let value = try JSONValue.parse(Data(#"[9223372036854775807, 9223372036854775808, -1, 1.5, "7"]"#.utf8))
        #expect(value == [.int(Int64.max), .uint(UInt64(Int64.max) + 1), -1, 1.5, "7"])
        #expect(value["missing"] == nil)
        #expect(try JSONValue.parse(Data(#"{"k":"v"}"#.utf8))["k"]?.stringValue == "v")
    }

    @Test("the README example works as written")
    func readmeExample() async throws {
        try await TemporaryDirectory.with { dir in
            let source = dir + "/ctr1"
            let target = dir + "/guest"
            try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            try Data(Fixtures.fullRuntimeSpec.utf8).write(to: URL(fileURLWithPath: source + "/config.json"))

            let spec = try RuntimeSpec.load(bundle: source)
            try spec.validate()
            let netns = spec.namespace(.network)?.path
            let guestSpec = spec.with { $0.root?.path = "/run/rootfs"; $0.setNamespace(.network) }
            try guestSpec.save(bundle: target)

            #expect(netns == "/var/run/netns/cni-1234")
            let saved = try RuntimeSpec.load(bundle: target)
            #expect(saved.root?.path == "/run/rootfs" && saved.root?.extensions["xRoot"] == 1)
            #expect(saved.namespace(.network)?.path == nil)
            #expect(saved.extensions == spec.extensions)
        }
    }
}
