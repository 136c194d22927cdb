import Foundation
import OCISpec
import Testing

@Suite("RuntimeSpec validation")
struct RuntimeSpecValidationTests {
    /// A minimal valid spec to break one rule at a time.
    static func valid() -> RuntimeSpec {
        var spec = RuntimeSpec(ociVersion: "1.0.2-dev")
        spec.root = .init(path: "rootfs")
        spec.process = .init(args: ["sh"], env: ["PATH=/bin"], cwd: "/")
        spec.mounts = [.init(destination: "/proc", type: "proc", source: "proc")]
        spec.linux = .init(namespaces: [.init(type: .pid), .init(type: .mount), .init(type: .network)])
        return spec
    }

    @Test("the minimal spec is valid")
    func minimalIsValid() throws {
        try Self.valid().validate()
        #expect(Self.valid().validationReport().isValid)
    }

    /// One rule broken on purpose, with the error it must produce.
    struct BrokenRule: Sendable, CustomTestStringConvertible {
        let expected: String
        let code: OCISpecError.Code
        let breakIt: @Sendable (inout RuntimeSpec) -> Void
        init(_ expected: String, _ code: OCISpecError.Code, _ breakIt: @escaping @Sendable (inout RuntimeSpec) -> Void) {
            self.expected = expected
            self.code = code
            self.breakIt = breakIt
        }
        var testDescription: String { expected }
    }

    static let brokenRules: [BrokenRule] = [
        BrokenRule("process.args: must not be empty", .invalidValue) { s in s.process?.args = [] },
        BrokenRule("process.args: required", .missingField) { s in s.process?.args = nil },
        BrokenRule("root.path: required", .missingField) { s in s.root?.path = nil },
        BrokenRule("root: required", .missingField) { s in s.root = nil },
        BrokenRule("ociVersion: required", .missingField) { s in s.ociVersion = nil },
        BrokenRule("ociVersion: must be a SemVer version like 1.1.0, got \"1.0\"", .invalidValue) { s in s.ociVersion = "1.0" },
        BrokenRule("ociVersion: unsupported major version in \"2.0.0\" (expected 1.x)", .invalidValue) { s in s.ociVersion = "2.0.0" },
        BrokenRule("linux.namespaces[2].type: unknown namespace \"foo\"", .invalidValue) { s in s.linux?.namespaces?[2].type = "foo" },
        BrokenRule("linux.namespaces[3].type: duplicate namespace \"pid\" (first at linux.namespaces[0])", .duplicate) { s in s.linux?.namespaces?.append(.init(type: .pid)) },
        BrokenRule("linux.namespaces[2].path: must be absolute, got \"netns\"", .invalidValue) { s in s.linux?.namespaces?[2].path = "netns" },
        BrokenRule("mounts[1].destination: must be absolute, got \"dev\"", .invalidValue) { s in s.mounts?.append(.init(destination: "dev")) },
        BrokenRule("process.user.uid: required", .missingField) { s in s.process?.user?.uid = nil },
        BrokenRule("process.user.gid: required", .missingField) { s in s.process?.user?.gid = nil },
        BrokenRule("process.cwd: must be absolute, got \"work\"", .invalidValue) { s in s.process?.cwd = "work" },
        BrokenRule("process.env[1]: must be KEY=value, got \"NOVALUE\"", .invalidValue) { s in s.process?.env?.append("NOVALUE") },
        BrokenRule("process.rlimits[1].type: duplicate rlimit \"RLIMIT_NOFILE\" (first at process.rlimits[0])", .duplicate) { s in
             s.process?.rlimits = [.init(type: "RLIMIT_NOFILE", hard: 2, soft: 1), .init(type: "RLIMIT_NOFILE", hard: 2, soft: 1)]
        },
        BrokenRule("process.rlimits[0].soft: must not exceed hard (5 > 4)", .invalidValue) { s in s.process?.rlimits = [.init(type: "RLIMIT_NPROC", hard: 4, soft: 5)] },
        BrokenRule("process.capabilities.bounding[0]: unknown capability \"chown\"", .invalidValue) { s in s.process?.capabilities = .init(bounding: ["chown"]) },
        BrokenRule("process.oomScoreAdj: must be in -1000...1000, got 1001", .invalidValue) { s in s.process?.oomScoreAdj = 1001 },
        BrokenRule("hooks.poststop[0].path: must be absolute, got \"hook\"", .invalidValue) { s in s.hooks = .init(); s.hooks?.poststop = [.init(path: "hook")] },
        BrokenRule("hooks.prestart[0].timeout: must be greater than zero, got 0", .invalidValue) { s in s.hooks = .init(); s.hooks?.prestart = [.init(path: "/h", timeout: 0)] },
        BrokenRule("linux.devices[0].major: required", .missingField) { s in s.linux?.devices = [.init(type: "c", path: "/dev/x", minor: 1)] },
        BrokenRule("linux.resources.memory.swap: must be -1 (unlimited) or >= 0, got -2", .invalidValue) { s in s.linux?.resources = .init(); s.linux?.resources?.memory = .init(swap: -2) },
        BrokenRule("linux.resources.devices[0].access: must combine r, w and m, got \"rx\"", .invalidValue) { s in s.linux?.resources = .init(); s.linux?.resources?.devices = [.init(allow: true, access: "rx")] },
        BrokenRule("linux.resources.hugepageLimits[0].pageSize: must look like 2MB or 1GB, got \"2M\"", .invalidValue) { s in s.linux?.resources = .init(); s.linux?.resources?.hugepageLimits = [.init(pageSize: "2M", limit: 1)] },
        BrokenRule("linux.seccomp.defaultAction: required", .missingField) { s in s.linux?.seccomp = .init() },
        BrokenRule("linux.seccomp.syscalls[0].action: unknown seccomp action \"SCMP_ACT_MAYBE\"", .invalidValue) { s in
            s.linux?.seccomp = .init(defaultAction: "SCMP_ACT_ALLOW", syscalls: [.init(names: ["read"], action: "SCMP_ACT_MAYBE")])
        },
        BrokenRule("linux.seccomp.syscalls[0].names: must not be empty", .invalidValue) { s in
            s.linux?.seccomp = .init(defaultAction: "SCMP_ACT_ALLOW", syscalls: [.init(names: [], action: "SCMP_ACT_LOG")])
        },
        BrokenRule("linux.seccomp.syscalls[0].args[0].index: must be in 0...5, got 6", .invalidValue) { s in
            s.linux?.seccomp = .init(defaultAction: "SCMP_ACT_ALLOW", syscalls: [
                .init(names: ["read"], action: "SCMP_ACT_ALLOW", args: [.init(index: 6, value: 0, op: "SCMP_CMP_EQ")]),
            ])
        },
        BrokenRule("linux.rootfsPropagation: unknown propagation \"weird\"", .invalidValue) { s in s.linux?.rootfsPropagation = "weird" },
        BrokenRule("linux.maskedPaths[0]: must be absolute, got \"proc/kcore\"", .invalidValue) { s in s.linux?.maskedPaths = ["proc/kcore"] },
        BrokenRule("linux.timeOffsets.realtime: unknown clock \"realtime\" (boottime or monotonic)", .invalidValue) { s in s.linux?.timeOffsets = ["realtime": .init(secs: 1)] },
        BrokenRule("process.ioPriority.class: unknown I/O priority class \"IOPRIO_CLASS_FAST\"", .invalidValue) { s in s.process?.ioPriority = .init(class: "IOPRIO_CLASS_FAST") },
        BrokenRule("process.scheduler.policy: unknown scheduler policy \"SCHED_FAST\"", .invalidValue) { s in s.process?.scheduler = .init(policy: "SCHED_FAST") },
        BrokenRule("linux.personality.domain: unknown personality domain \"BSD\"", .invalidValue) { s in s.linux?.personality = .init(domain: "BSD") },
    ]

    @Test("each broken rule is reported with its code, JSON path and message", arguments: brokenRules)
    func brokenRule(_ rule: BrokenRule) throws {
        let expected = rule.expected
        let code = rule.code
        let spec = Self.valid().with(rule.breakIt)
        let error = #expect(throws: OCISpecError.self) { try spec.validate() }
        #expect(error?.description == expected)
        #expect(error?.code == code)
        #expect(spec.validationReport().errors.count == 1, "\(spec.validationReport())")
    }

    @Test("the report lists every failure in document order")
    func reportListsAll() {
        let spec = Self.valid().with {
            $0.ociVersion = "x"
            $0.process?.args = []
            $0.linux?.namespaces?[1].type = "bogus"
        }
        let report = spec.validationReport()
        #expect(report.errors.map(\.path) == ["ociVersion", "process.args", "linux.namespaces[1].type"])
        #expect(!report.isValid)
        #expect(report.description.split(separator: "\n").count == 3)
    }

    @Test("decoding keeps what validation rejects, so nothing is lost before the caller decides")
    func decodeIsLenient() throws {
        let json = #"{"ociVersion":"9","linux":{"namespaces":[{"type":"foo"},{"type":"foo"}]},"mounts":[{"destination":"rel"}]}"#
        let spec = try expectLosslessRoundTrip(RuntimeSpec.self, Data(json.utf8))
        #expect(spec.validationReport().errors.map(\.code) ==
            [.invalidValue, .missingField, .invalidValue, .invalidValue, .invalidValue, .duplicate])
    }
}
