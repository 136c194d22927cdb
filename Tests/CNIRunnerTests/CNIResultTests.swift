import Foundation
import Testing
@testable import CNIRunner

@Suite("CNIResult parsing")
struct CNIResultTests {
    /// What bridge + host-local print at 0.4.0.
    static let result040 = """
    {"cniVersion": "0.4.0",
     "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:00:00:01"},
                    {"name": "veth1234", "mac": "aa:bb:cc:00:00:02"},
                    {"name": "eth0", "mac": "aa:bb:cc:00:00:03", "sandbox": "/run/netns/x"}],
     "ips": [{"version": "4", "interface": 2, "address": "10.88.0.5/16", "gateway": "10.88.0.1"}],
     "routes": [{"dst": "0.0.0.0/0"}],
     "dns": {}}
    """

    /// A 1.0.0/1.1.0 result with IPv6, route gateways and DNS.
    static let result100 = """
    {"cniVersion": "1.1.0",
     "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:00:00:03", "mtu": 1400, "sandbox": "/run/netns/x"}],
     "ips": [{"interface": 0, "address": "10.88.0.5/16", "gateway": "10.88.0.1"},
             {"interface": 0, "address": "fd00::5/64", "gateway": "fd00::1"}],
     "routes": [{"dst": "0.0.0.0/0", "gw": "10.88.0.1", "mtu": 1400, "priority": 10}, {"dst": "::/0"}],
     "dns": {"nameservers": ["10.88.0.1"], "domain": "example", "search": ["example"], "options": ["ndots:2"]}}
    """

    @Test func result040() throws {
        let result = try CNIResult.parse(Data(Self.result040.utf8), source: "bridge")
        #expect(result.cniVersion == "0.4.0")
        #expect(result.interfaces.count == 3)
        #expect(result.interfaces[2].sandbox == "/run/netns/x")
        #expect(result.ips == [CNIResult.IPConfig(address: "10.88.0.5/16", gateway: "10.88.0.1", interface: 2)])
        #expect(result.routes == [CNIResult.Route(destination: "0.0.0.0/0")])
        #expect(result.dns.isEmpty)
        #expect(result.containerAddresses().map(\.address) == ["10.88.0.5/16"])
        #expect(result.raw == Data(Self.result040.utf8))
    }

    @Test func result100() throws {
        let result = try CNIResult.parse(Data(Self.result100.utf8), source: "bridge")
        #expect(result.cniVersion == "1.1.0")
        #expect(result.interfaces == [CNIResult.Interface(name: "eth0", mac: "aa:bb:cc:00:00:03", mtu: 1400, sandbox: "/run/netns/x")])
        #expect(result.ips.map(\.family) == [4, 6])
        #expect(result.routes[0] == CNIResult.Route(destination: "0.0.0.0/0", gateway: "10.88.0.1", mtu: 1400, priority: 10))
        #expect(result.dns == CNIResult.DNS(nameservers: ["10.88.0.1"], domain: "example", search: ["example"], options: ["ndots:2"]))
    }

    @Test(arguments: [
        ("not json at all", "not valid JSON"),
        ("", "not valid JSON"),
        ("[]", "top level is a JSON array"),
        (#"{"interfaces": []}"#, "missing \"cniVersion\""),
        (#"{"cniVersion": 4}"#, "\"cniVersion\" is a number"),
        (#"{"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}}"#, "0.1/0.2"),
        (#"{"cniVersion": "0.3.1", "ip4": {"ip": "10.0.0.2/24"}}"#, "0.1/0.2"),
        (#"{"cniVersion": "7.0.0"}"#, "unsupported cniVersion"),
        (#"{"cniVersion": "1.0.0", "interfaces": {"name": "eth0"}}"#, "\"interfaces\" is a object"),
        (#"{"cniVersion": "1.0.0", "interfaces": [["eth0"]]}"#, "interfaces[0] is a array"),
        (#"{"cniVersion": "1.0.0", "interfaces": [{"mac": "x"}]}"#, "interfaces[0] has no \"name\""),
        (#"{"cniVersion": "1.0.0", "ips": [{"address": 5}]}"#, "ips[0].address is a number"),
        (#"{"cniVersion": "1.0.0", "ips": [{"gateway": "10.0.0.1"}]}"#, "ips[0] has no \"address\""),
        (#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.300/24"}]}"#, "not an address/prefix"),
        (#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/33"}]}"#, "not an address/prefix"),
        (#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24", "interface": 3}]}"#, "not an index"),
        (#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24", "interface": "0"}]}"#, "is a string, not an integer"),
        (#"{"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.0.0.3/24"}]}"#, "does not match"),
        (#"{"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]}"#, "routes[0] has no \"dst\""),
        (#"{"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "gw": "nonsense"}]}"#, "not an IP address"),
        (#"{"cniVersion": "1.0.0", "dns": ["8.8.8.8"]}"#, "dns is a array"),
        (#"{"cniVersion": "1.0.0", "dns": {"nameservers": [1]}}"#, "dns.nameservers[0] is a number"),
        (String(repeating: "{\"a\":", count: 5000), "nested deeper"),
    ])
    func hostileResults(text: String, expected: String) {
        let error = #expect(throws: CNIError.self) { try CNIResult.parse(Data(text.utf8), source: "plugin evil") }
        #expect(error?.code == .invalidResult)
        #expect(error?.message.contains("plugin evil") == true)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "") should contain \(expected)")
    }

    @Test func hugeStringsAreBounded() {
        let name = String(repeating: "x", count: 2 << 20)
        let text = #"{"cniVersion": "1.0.0", "interfaces": [{"name": "\#(name)"}]}"#
        let error = #expect(throws: CNIError.self) { try CNIResult.parse(Data(text.utf8), source: "plugin big") }
        #expect(error?.code == .invalidResult)
        #expect(error?.message.contains("larger than") == true)

        // Large but within the limit: parsed, not crashed; a bogus address in it is reported
        // with a bounded excerpt.
        let address = String(repeating: "9", count: 500_000)
        let within = #"{"cniVersion": "1.0.0", "ips": [{"address": "\#(address)"}]}"#
        let second = #expect(throws: CNIError.self) { try CNIResult.parse(Data(within.utf8), source: "plugin big") }
        #expect(second?.code == .invalidResult)
        #expect((second?.message.count ?? .max) < 400)
    }
}
