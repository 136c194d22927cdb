import Foundation
import Testing
@testable import CNIRunner

@Suite("CNINetworkList parsing and loading")
struct CNINetworkListTests {
    static let conflist = """
    {"cniVersion": "1.0.0", "name": "qbx", "disableCheck": true,
     "plugins": [
       {"type": "bridge", "bridge": "cni0", "isGateway": true, "mtu": 1400,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]]}},
       {"type": "portmap", "capabilities": {"portMappings": true, "other": false}}
     ]}
    """

    @Test func validConflist() throws {
        let list = try CNINetworkList.parse(Data(Self.conflist.utf8), source: "t.conflist")
        #expect(list.name == "qbx")
        #expect(list.cniVersion == "1.0.0")
        #expect(list.disableCheck)
        #expect(list.plugins.map(\.type) == ["bridge", "portmap"])
        #expect(list.plugins[0].config["mtu"] == .int(1400))
        #expect(list.plugins[0].config["ipam"]?.objectValue?["type"] == "host-local")
        #expect(list.plugins[1].capabilities == ["portMappings"])
        // The cache form round-trips.
        #expect(try CNINetworkList.parse(list.serialized(), source: "again") == list)
    }

    @Test func singleConfIsWrapped() throws {
        let conf = #"{"cniVersion": "0.4.0", "name": "single", "type": "ptp", "ipMasq": true}"#
        let list = try CNINetworkList.parse(Data(conf.utf8), source: "t.conf")
        #expect(list.name == "single")
        #expect(list.cniVersion == "0.4.0")
        #expect(list.plugins.count == 1)
        #expect(list.plugins[0].type == "ptp")
        #expect(list.plugins[0].config["ipMasq"] == true)
    }

    @Test func directoryLoadOrderAndNameSelection() throws {
        let directory = try CNIFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func write(_ file: String, _ name: String) throws {
            let text = #"{"cniVersion": "1.0.0", "name": "\#(name)", "plugins": [{"type": "loopback"}]}"#
            try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/" + file))
        }
        try write("20-second.conflist", "second")
        try write("10-first.conf", "first")
        try write("30-third.json", "third")
        try write("05-ignored.txt", "ignored")
        try Data("not json".utf8).write(to: URL(fileURLWithPath: directory + "/25-broken.conflist"))

        #expect(try CNINetworkList.load(directory: directory).name == "first")
        #expect(try CNINetworkList.load(directory: directory, name: "second").name == "second")
        #expect(try CNINetworkList.load(directory: directory, name: "third").name == "third")
        let missing = #expect(throws: CNIError.self) { try CNINetworkList.load(directory: directory, name: "ignored") }
        #expect(missing?.code == .invalidConfiguration)
        #expect(missing?.message.contains("no network named ignored") == true)
        #expect(missing?.message.contains("25-broken.conflist") == true)

        let empty = #expect(throws: CNIError.self) { try CNINetworkList.load(directory: directory + "/nope") }
        #expect(empty?.code == .invalidConfiguration)
    }

    @Test(arguments: [
        (#"{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}"#, "missing network \"name\""),
        (#"{"cniVersion": "0.2.0", "name": "n", "plugins": [{"type": "bridge"}]}"#, "unsupported cniVersion \"0.2.0\""),
        (#"{"cniVersion": "9.9.9", "name": "n", "plugins": [{"type": "bridge"}]}"#, "unsupported cniVersion"),
        (#"{"name": "n", "plugins": [{"type": "bridge"}]}"#, "no \"cniVersion\""),
        (#"{"cniVersion": "1.0.0", "name": "n", "plugins": []}"#, "has no plugins"),
        (#"{"cniVersion": "1.0.0", "name": "n"}"#, "has no plugins"),
        (#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../../bin/sh"}]}"#, "invalid plugin type"),
        (#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "a/b"}]}"#, "invalid plugin type"),
        (#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": ""}]}"#, "empty plugin type"),
        (#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "x"}]}"#, "no string \"type\""),
        (#"{"cniVersion": "1.0.0", "name": "n", "plugins": {"type": "bridge"}}"#, "not an array"),
        (#"{"cniVersion": "1.0.0", "name": "n", "plugins": ["bridge"]}"#, "plugins[0] is a string"),
        (#"{"cniVersion": "1.0.0", "name": "../etc", "plugins": [{"type": "bridge"}]}"#, "invalid network name"),
        (#"{"cniVersion": 1, "name": "n", "plugins": [{"type": "bridge"}]}"#, "\"cniVersion\" is a number"),
        (#"[1, 2]"#, "top level is a JSON array"),
        (#"{"cniVersion": "1.0.0", "name": "n", "#, "not valid JSON"),
        (String(repeating: "[", count: 10000), "nested deeper"),
    ])
    func invalidConfigurations(text: String, expected: String) throws {
        let error = #expect(throws: CNIError.self) { try CNINetworkList.parse(Data(text.utf8), source: "bad.conflist") }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("bad.conflist") == true, "message names the source: \(error?.message ?? "")")
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "") should contain \(expected)")
    }

    @Test func oversizedFileIsRejected() {
        let big = Data(repeating: UInt8(ascii: " "), count: CNINetworkList.maximumFileSize + 1)
        let error = #expect(throws: CNIError.self) { try CNINetworkList.parse(big, source: "big.conflist") }
        #expect(error?.code == .invalidConfiguration)
    }
}
