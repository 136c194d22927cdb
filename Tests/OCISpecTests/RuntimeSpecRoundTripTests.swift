import Foundation
import OCISpec
import Testing
import TestSupport

@Suite("RuntimeSpec lossless round trip")
struct RuntimeSpecRoundTripTests {
    @Test("runc spec and crun spec output (root and rootless) round-trips exactly and validates",
          .enabled(if: Prerequisite.tools("runc", "crun")),
          arguments: [["runc", "spec"], ["runc", "spec", "--rootless"], ["crun", "spec"], ["crun", "spec", "--rootless"]])
    func generatedSpecs(command: [String]) async throws {
        try await TemporaryDirectory.with { dir in
            try await runTool(command[0], Array(command.dropFirst()), in: dir)
            let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/config.json"))
            let spec = try expectLosslessRoundTrip(RuntimeSpec.self, data)
            #expect(spec.root?.path == "rootfs")
            #expect(spec.process?.args == ["sh"])
            #expect(spec.hasNamespace(.pid) && spec.hasNamespace(.mount))
            #expect(spec.hasNamespace(.user) == command.contains("--rootless"))
            #expect(spec.process?.rlimits?.first?.type == "RLIMIT_NOFILE")
            #expect(extensionEntries(spec).isEmpty, "a field of real output is not modelled: \(extensionEntries(spec))")
            #expect(spec.validationReport().errors == [])
            try spec.validate()
            // Loading through the bundle API gives the same value.
            #expect(try RuntimeSpec.load(bundle: dir) == spec)
        }
    }

    @Test("a spec using every field, extreme integers and unknown members round-trips exactly")
    func fullSpec() throws {
        let spec = try expectLosslessRoundTrip(RuntimeSpec.self, Data(Fixtures.fullRuntimeSpec.utf8))
        try spec.validate()
    }

    @Test("every modelled field is decoded into its property, every unknown member into extensions")
    func everyFieldModelled() throws {
        let data = Data(Fixtures.fullRuntimeSpec.utf8)
        let spec = try RuntimeSpec(json: data)
        var expected = xMembers(try RefJSON.parse(data))
        // Members the library deliberately leaves unmodelled.
        expected.formUnion(["$ solaris", "$ vm"])
        #expect(extensionEntries(spec) == expected)
        // And the fixture really sets every modelled property somewhere.
        #expect(unexercisedFields(spec) == [])
    }

    @Test("integers keep their exact values in typed fields")
    func exactIntegers() throws {
        let spec = try RuntimeSpec(json: Data(Fixtures.fullRuntimeSpec.utf8))
        let core = try #require(spec.process?.rlimits?.last)
        #expect(core.hard == UInt64.max && core.soft == RuntimeSpec.Rlimit.infinity)
        #expect(spec.process?.user?.uid == UInt32.max)
        #expect(spec.process?.scheduler?.period == UInt64.max)
        let resources = try #require(spec.linux?.resources)
        #expect(resources.memory?.limit == Int64.max)
        #expect(resources.memory?.swap == -1)
        #expect(resources.memory?.kernelTCP == 9_223_372_036_854_771_712)
        #expect(resources.cpu?.shares == UInt64.max)
        #expect(resources.cpu?.realtimeRuntime == Int64.min)
        #expect(resources.pids?.limit == -1)
        #expect(resources.hugepageLimits?.first?.limit == UInt64.max)
        #expect(resources.blockIO?.throttleReadBpsDevice?.first?.rate == UInt64.max)
        #expect(spec.linux?.seccomp?.syscalls?[1].args?[0].value == UInt64.max)
        #expect(spec.linux?.timeOffsets?["boottime"]?.secs == Int64.min)
        #expect(spec.extensions["xHuge"] == .uint(UInt64.max))
        #expect(spec.extensions["xMostNegative"] == .int(Int64.min))
        #expect(spec.extensions["xFloat"] == .double(1.5e-7))
        #expect(spec.extensions["xNullValue"] == .null)
        #expect(spec.process?.ioPriority?.class == "IOPRIO_CLASS_BE")
        #expect(spec.annotations?["unicode"] == "h\u{e9}llo \u{1F600} \"quoted\" \\ back")
        // The encoded text carries the digits literally.
        let text = String(decoding: try spec.jsonData(), as: UTF8.self)
        #expect(text.contains("\"hard\":18446744073709551615"))
        #expect(text.contains("\"limit\":9223372036854775807"))
        #expect(text.contains("\"swap\":-1"))
        #expect(text.contains("\"xMostNegative\":-9223372036854775808"))
    }

    @Test("known fields given as null and known-but-absent fields stay as they were")
    func nullsAndAbsence() throws {
        let json = #"{"ociVersion":"1.0.2","hostname":null,"process":{"cwd":"/","args":null,"user":{"uid":0,"gid":0}},"linux":{"seccomp":null}}"#
        let spec = try expectLosslessRoundTrip(RuntimeSpec.self, Data(json.utf8))
        #expect(spec.hostname == nil)
        #expect(spec.extensions["hostname"] == .null)
        #expect(spec.process?.args == nil)
        #expect(spec.root == nil && spec.mounts == nil)
        // Setting the field replaces the null instead of writing the key twice.
        let renamed = spec.with { $0.hostname = "vm" }
        let tree = try RefJSON.parse(renamed.jsonData())
        guard case .object(let members) = tree else { Issue.record("not an object"); return }
        #expect(members["hostname"] == .string("vm"))
    }

    @Test("values out of the field's range are rejected with the JSON path, never wrapped")
    func outOfRange() throws {
        let cases: [(String, String)] = [
            (#"{"ociVersion":"1.0.0","linux":{"resources":{"memory":{"limit":9223372036854775808}}}}"#,
             "linux.resources.memory.limit"),
            (#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":4294967296,"gid":0}}}"#, "process.user.uid"),
            (#"{"ociVersion":"1.0.0","process":{"cwd":"/","rlimits":[{"type":"RLIMIT_CORE","hard":-1,"soft":0}]}}"#,
             "process.rlimits[0].hard"),
            (#"{"ociVersion":"1.0.0","process":{"cwd":"/","user":{"uid":"0","gid":0}}}"#, "process.user.uid"),
            (#"{"ociVersion":"1.0.0","linux":{"namespaces":[{"type":"pid"},{"path":"/x"}]}}"#, "linux.namespaces[1].type"),
            (#"{"ociVersion":"1.0.0","linux":{"resources":{"rdma":{"0":{"hcaHandles":-3}}}}}"#,
             "linux.resources.rdma.0.hcaHandles"),
            (#"{"ociVersion":"1.0.0","process":{"cwd":"/","env":["A=1",7]}}"#, "process.env[1]"),
        ]
        for (json, path) in cases {
            let error = #expect(throws: OCISpecError.self) { try RuntimeSpec(json: Data(json.utf8)) }
            #expect(error?.path == path, "\(json)")
            #expect(error?.code == (path.hasSuffix("[1].type") ? .missingField : .typeMismatch))
        }
        let garbage = #expect(throws: OCISpecError.self) { try RuntimeSpec(json: Data("{\"ociVersion\":".utf8)) }
        #expect(garbage?.code == .malformedJSON)
    }

    @Test("copies with modifications keep unknown members and leave the original untouched")
    func modifiedCopies() throws {
        let spec = try RuntimeSpec(json: Data(Fixtures.fullRuntimeSpec.utf8))
        var modified = spec.with {
            $0.process?.args = ["/init"]
            $0.linux?.resources?.memory?.limit = 512 << 20
            $0.setNamespace(.network, path: "/proc/1/ns/net")
            $0.annotations?["io.qemubox.vm"] = "1"
        }
        #expect(spec.process?.args?.first == "/bin/sh")
        #expect(modified.process?.args == ["/init"])
        #expect(modified.namespace(.network)?.path == "/proc/1/ns/net")
        #expect(modified.namespace(.network)?.extensions["xNs"] == "n")
        #expect(modified.annotation("io.qemubox.vm") == "1")
        let tree = try RefJSON.parse(modified.jsonData())
        #expect(xMembers(tree) == xMembers(try RefJSON.parse(Data(Fixtures.fullRuntimeSpec.utf8))))
        let removed = modified.removeNamespace(.time)
        #expect(removed)
        #expect(!modified.hasNamespace(.time) && spec.hasNamespace(.time))
        let removedAgain = modified.removeNamespace(.time)
        #expect(!removedAgain)
        modified.setNamespace(.time)
        #expect(modified.linux?.namespaces?.last == RuntimeSpec.Namespace(type: .time))
    }

    @Test("a spec built in code encodes to the expected document")
    func builtInCode() throws {
        var spec = RuntimeSpec()
        spec.root = .init(path: "/run/rootfs", readonly: true)
        spec.process = .init(args: ["sleep", "1"], env: ["PATH=/bin"])
        spec.mounts = [.init(destination: "/proc", type: "proc", source: "proc")]
        spec.setNamespace(.pid)
        spec.process?.rlimits = [.init(type: "RLIMIT_NOFILE", hard: .max, soft: 1024)]
        try spec.validate()
        let expected = #"{"linux":{"namespaces":[{"type":"pid"}]},"mounts":[{"destination":"/proc","source":"proc","type":"proc"}],"ociVersion":"1.1.0","process":{"args":["sleep","1"],"cwd":"/","env":["PATH=/bin"],"rlimits":[{"hard":18446744073709551615,"soft":1024,"type":"RLIMIT_NOFILE"}],"user":{"gid":0,"uid":0}},"root":{"path":"/run/rootfs","readonly":true}}"#
        #expect(String(decoding: try spec.jsonData(), as: UTF8.self) == expected)
        #expect(spec.rootfsPath(bundle: "/b") == "/run/rootfs")
        spec.root?.path = "rootfs"
        #expect(spec.rootfsPath(bundle: "/b") == "/b/rootfs")
    }
}
