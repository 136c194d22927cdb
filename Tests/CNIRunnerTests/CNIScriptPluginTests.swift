import Foundation
import Testing
import TestSupport
@testable import CNIRunner

/// Tiny `/bin/sh` plugins that record what they were given or misbehave on purpose. No
/// namespaces: the plugins never look at CNI_NETNS.
@Suite("CNIRunner with script plugins")
struct CNIScriptPluginTests {
    /// A temp dir with `bin/` and `cache/`, removed afterwards.
    static func withDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
        let directory = try CNIFixture.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory + "/bin", withIntermediateDirectories: true)
        return try await body(directory)
    }

    static func writePlugin(_ directory: String, _ name: String, _ body: String) throws {
        try CNIFixture.writeScript(directory + "/bin/" + name, body)
    }

    /// Shell lines writing `pid` to `path` atomically (temp file, then `mv`): a reader never
    /// sees the file created but still empty.
    static func writePID(_ pid: String, to path: String) -> String {
        "echo \(pid) > \"\(path).tmp\" && mv \"\(path).tmp\" \"\(path)\""
    }

    /// The pid in `path`, nil while it is not there (yet).
    static func readPID(_ path: String) -> Int32? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    static func runner(_ directory: String, timeout: Duration = .seconds(20)) -> CNIRunner {
        CNIRunner(binDirectories: [directory + "/bin", "/nonexistent"], cacheDirectory: directory + "/cache", timeout: timeout)
    }

    /// Records env and stdin per command into `<dir>/<name>.<command>.{env,json}`, answers
    /// ADD with a result naming itself as the interface.
    static func recorder(_ directory: String, _ name: String, address: String) -> String {
        """
        cat > "\(directory)/\(name).$CNI_COMMAND.json"
        env | grep '^CNI_' | sort > "\(directory)/\(name).$CNI_COMMAND.env"
        if [ "$CNI_COMMAND" = ADD ]; then
          echo '{"cniVersion":"1.1.0","interfaces":[{"name":"\(name)","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"\(address)","interface":0}]}'
        fi
        """
    }

    static func json(_ path: String) throws -> [String: CNIJSON] {
        try #require(try CNIJSON.parse(Data(contentsOf: URL(fileURLWithPath: path))).objectValue)
    }

    @Test("environment, stdin, prevResult chaining, runtimeConfig only for declared capabilities, cache, DEL order")
    func protocolDetails() async throws {
        try await Self.withDirectory { directory in
            try Self.writePlugin(directory, "first", Self.recorder(directory, "first", address: "10.1.0.2/24"))
            try Self.writePlugin(directory, "second", Self.recorder(directory, "second", address: "10.1.0.3/24"))
            let list = try CNINetworkList.parse(Data("""
                {"cniVersion": "1.1.0", "name": "rec", "plugins": [
                  {"type": "first", "custom": {"kept": [1, 2.5, null]}, "capabilities": {"portMappings": true}},
                  {"type": "second", "capabilities": {"mac": true}}]}
                """.utf8), source: "rec")
            let runtime = CNIRuntimeConfig(containerID: "abc", networkNamespace: "/run/netns/fake", interfaceName: "net1",
                                           args: [("A", "1"), ("B", "two")],
                                           capabilityArgs: ["portMappings": [["hostPort": 1]], "mac": "aa:bb:cc:dd:ee:ff", "bandwidth": [:]])
            let runner = Self.runner(directory)
            let result = try await runner.add(list, runtime)
            #expect(result.interfaces.map(\.name) == ["second"], "the last plugin's result is the chain's")

            let env = try String(contentsOfFile: directory + "/first.ADD.env", encoding: .utf8)
            #expect(env.contains("CNI_COMMAND=ADD\n"))
            #expect(env.contains("CNI_CONTAINERID=abc\n"))
            #expect(env.contains("CNI_NETNS=/run/netns/fake\n"))
            #expect(env.contains("CNI_IFNAME=net1\n"))
            #expect(env.contains("CNI_ARGS=A=1;B=two\n"))
            #expect(env.contains("CNI_PATH=\(directory)/bin:/nonexistent\n"))

            let first = try Self.json(directory + "/first.ADD.json")
            #expect(first["name"] == "rec")
            #expect(first["cniVersion"] == "1.1.0")
            #expect(first["prevResult"] == nil)
            #expect(first["custom"] == ["kept": [1, .double(2.5), nil]])
            #expect(first["runtimeConfig"] == ["portMappings": [["hostPort": 1]]])
            let second = try Self.json(directory + "/second.ADD.json")
            #expect(second["runtimeConfig"] == ["mac": "aa:bb:cc:dd:ee:ff"])
            #expect(second["prevResult"]?.objectValue?["interfaces"]?.arrayValue?.first?.objectValue?["name"] == "first")

            // The cache holds the result; CHECK and DEL get it as prevResult.
            let cached = try #require(runner.cachedResult(network: "rec", containerID: "abc", interfaceName: "net1"))
            #expect(cached.interfaces.map(\.name) == ["second"])
            let cacheFile = directory + "/cache/results/rec-abc-net1"
            let cacheEntry = try Self.json(cacheFile)
            #expect(cacheEntry["kind"] == "cniCacheV1")
            #expect(cacheEntry["cniArgs"] == [["A", "1"], ["B", "two"]])
            var info = stat()
            #expect(stat(cacheFile, &info) == 0 && info.st_mode & 0o777 == 0o600)

            try await runner.check(list, runtime)
            #expect(try Self.json(directory + "/first.CHECK.json")["prevResult"]?.objectValue?["interfaces"]?
                .arrayValue?.first?.objectValue?["name"] == "second")

            try await runner.delete(list, runtime)
            let firstDel = try Self.json(directory + "/first.DEL.json")
            #expect(firstDel["prevResult"]?.objectValue?["interfaces"]?.arrayValue?.first?.objectValue?["name"] == "second")
            let firstDelEnv = try FileManager.default.attributesOfItem(atPath: directory + "/first.DEL.env")[.modificationDate] as? Date
            let secondDelEnv = try FileManager.default.attributesOfItem(atPath: directory + "/second.DEL.env")[.modificationDate] as? Date
            #expect((secondDelEnv ?? .distantFuture) <= (firstDelEnv ?? .distantPast), "DEL in reverse order")
            #expect(!FileManager.default.fileExists(atPath: cacheFile))

            // CHECK without a cached result is a clear error.
            let error = await #expect(throws: CNIError.self) { try await runner.check(list, runtime) }
            #expect(error?.code == .cache)
        }
    }

    @Test("a hanging plugin is killed after the timeout, with its children")
    func timeout() async throws {
        try await Self.withDirectory { directory in
            try Self.writePlugin(directory, "sleepy", """
            [ "$CNI_COMMAND" = ADD ] || exit 0
            sleep 300 &
            \(Self.writePID("$!", to: directory + "/child.pid"))
            \(Self.writePID("$$", to: directory + "/plugin.pid"))
            wait
            """)
            let list = try CNINetworkList.parse(Data(#"{"cniVersion":"1.0.0","name":"slow","plugins":[{"type":"sleepy"}]}"#.utf8),
                                                source: "slow")
            // Long enough for the plugin to write both pid files even on a loaded machine.
            let runner = Self.runner(directory, timeout: .seconds(3))
            let start = ContinuousClock.now
            let error = await #expect(throws: CNIError.self) {
                try await runner.add(list, CNIRuntimeConfig(containerID: "c1", networkNamespace: "/run/netns/none"))
            }
            #expect(error?.code == .timeout)
            #expect(error?.message.contains("plugin sleepy") == true)
            #expect(ContinuousClock.now - start < .seconds(15))
            let pids = try ["plugin.pid", "child.pid"].map { file in
                try #require(Self.readPID(directory + "/" + file), "\(file) not written before the timeout")
            }
            // The plugin is reaped by the runner; its child is reparented and reaped by init.
            let gone = await eventually(timeout: .seconds(10)) { pids.allSatisfy { !CNIFixture.processAlive($0) } }
            #expect(gone, "plugin processes \(pids) still running")
        }
    }

    @Test("hostile plugin output is an invalidResult naming the plugin", arguments: [
        ("echo 'this is not json'", "not valid JSON"),
        ("echo '[1,2,3]'", "top level is a JSON array"),
        ("echo '{\"interfaces\":[]}'", "missing \"cniVersion\""),
        ("echo '{\"cniVersion\":\"0.2.0\",\"ip4\":{\"ip\":\"10.0.0.2/24\"}}'", "0.1/0.2"),
        ("head -c 3000000 /dev/zero | tr '\\\\0' x", "larger than"),
        ("exit 0", "not valid JSON"),
    ])
    func hostileOutput(script: String, expected: String) async throws {
        try await Self.withDirectory { directory in
            try Self.writePlugin(directory, "evil", "cat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\n" + script + "\n")
            let list = try CNINetworkList.parse(Data(#"{"cniVersion":"1.0.0","name":"evil","plugins":[{"type":"evil"}]}"#.utf8),
                                                source: "evil")
            let runner = Self.runner(directory)
            let error = await #expect(throws: CNIError.self) {
                try await runner.add(list, CNIRuntimeConfig(containerID: "c1", networkNamespace: "/run/netns/none"))
            }
            #expect(error?.code == .invalidResult, "\(error?.description ?? "")")
            #expect(error?.message.contains("plugin evil") == true)
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "") should contain \(expected)")
        }
    }

    @Test("a failing plugin without CNI error JSON reports its exit status and stderr")
    func plainFailure() async throws {
        try await Self.withDirectory { directory in
            try Self.writePlugin(directory, "broken", "echo 'something went wrong' >&2\nexit 3\n")
            let list = try CNINetworkList.parse(Data(#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"broken"}]}"#.utf8),
                                                source: "b")
            let error = await #expect(throws: CNIError.self) {
                try await Self.runner(directory).add(list, CNIRuntimeConfig(containerID: "c1", networkNamespace: "/x"))
            }
            #expect(error?.code == .pluginFailed, "\(error?.description ?? "")")
            #expect(error?.message.contains("exit status 3: something went wrong") == true, "\(error?.message ?? "")")
        }
    }

    @Test("invalid runtime configuration is rejected before any plugin runs")
    func invalidRuntime() async throws {
        let runner = CNIRunner(binDirectories: ["/nonexistent"], cacheDirectory: "/nonexistent")
        let list = try CNINetworkList.parse(Data(#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x"}]}"#.utf8), source: "n")
        for runtime in [CNIRuntimeConfig(containerID: "../etc", networkNamespace: "/x"),
                        CNIRuntimeConfig(containerID: "ok", networkNamespace: "/x", interfaceName: "much-too-long-name0"),
                        CNIRuntimeConfig(containerID: "ok", networkNamespace: "/x", args: [("A", "1;B=2")])] {
            let error = await #expect(throws: CNIError.self) { try await runner.add(list, runtime) }
            #expect(error?.code == .invalidConfiguration)
        }
    }

    @Test("GC at 1.1.0 passes the valid attachments; older versions do nothing")
    func gc() async throws {
        try await Self.withDirectory { directory in
            try Self.writePlugin(directory, "collector", Self.recorder(directory, "collector", address: "10.0.0.2/24"))
            let runner = Self.runner(directory)
            let old = try CNINetworkList.parse(Data(#"{"cniVersion":"1.0.0","name":"g","plugins":[{"type":"collector"}]}"#.utf8), source: "g")
            try await runner.gc(old, validAttachments: [("a", "eth0")])
            #expect(!FileManager.default.fileExists(atPath: directory + "/collector.GC.json"))

            let new = try CNINetworkList.parse(Data(#"{"cniVersion":"1.1.0","name":"g","plugins":[{"type":"collector"}]}"#.utf8), source: "g")
            try await runner.gc(new, validAttachments: [("a", "eth0"), ("b", "net1")])
            let stdin = try Self.json(directory + "/collector.GC.json")
            #expect(stdin["cni.dev/valid-attachments"] == [["containerID": "a", "ifname": "eth0"], ["containerID": "b", "ifname": "net1"]])
            let env = try String(contentsOfFile: directory + "/collector.GC.env", encoding: .utf8)
            #expect(env.contains("CNI_COMMAND=GC\n"))
            #expect(!env.contains("CNI_CONTAINERID"))
        }
    }

    @Test("cancelling the calling task kills the plugin")
    func cancellation() async throws {
        try await Self.withDirectory { directory in
            try Self.writePlugin(directory, "sleepy", """
            [ "$CNI_COMMAND" = ADD ] || exit 0
            \(Self.writePID("$$", to: directory + "/plugin.pid"))
            exec sleep 300
            """)
            let list = try CNINetworkList.parse(Data(#"{"cniVersion":"1.0.0","name":"c","plugins":[{"type":"sleepy"}]}"#.utf8), source: "c")
            let runner = Self.runner(directory, timeout: .seconds(120))
            let task = Task { try await runner.add(list, CNIRuntimeConfig(containerID: "c1", networkNamespace: "/x")) }
            // Wait for the pid itself, not for the file: `echo > file` creates it empty first.
            let started = await eventually(timeout: .seconds(20)) { Self.readPID(directory + "/plugin.pid") != nil }
            #expect(started)
            task.cancel()
            let start = ContinuousClock.now
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(ContinuousClock.now - start < .seconds(10))
            let pid = try #require(Self.readPID(directory + "/plugin.pid"))
            #expect(!CNIFixture.processAlive(pid))
        }
    }
}
