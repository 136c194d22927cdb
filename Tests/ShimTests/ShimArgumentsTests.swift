import QemuboxKit
import Testing
@testable import QemuboxShim

@Suite struct ShimArgumentsTests {
    @Test func parsesContainerdStartLine() throws {
        let args = try ShimArguments.parse(["-namespace", "default", "-address", "/run/containerd/containerd.sock",
                                            "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug", "start"])
        #expect(args.action == .start)
        #expect(args.namespace == "default")
        #expect(args.address == "/run/containerd/containerd.sock")
        #expect(args.publishBinary == "/usr/bin/containerd")
        #expect(args.id == "c1")
        #expect(args.debug)
    }

    @Test func parsesDeleteWithBundleAndEqualsForms() throws {
        let args = try ShimArguments.parse(["--namespace=k8s.io", "-address=/a", "-id=x", "-bundle", "/b", "delete"])
        #expect(args.action == .delete)
        #expect(args.namespace == "k8s.io")
        #expect(args.bundle == "/b")
        #expect(!args.debug)
    }

    @Test func versionNeedsNothingElse() throws {
        #expect(try ShimArguments.parse(["-v"]).action == .version)
        #expect(try ShimArguments.parse(["--version"]).action == .version)
    }

    @Test func daemonRoundTrip() throws {
        var args = try ShimArguments.parse(["-namespace", "n", "-id", "i", "-address", "a", "-debug", "start"])
        args.socket = "/run/qemubox/s/x.sock"
        let daemon = try ShimArguments.parse(args.daemonArguments())
        #expect(daemon.action == .serve)
        #expect(daemon.socket == "/run/qemubox/s/x.sock")
        #expect(daemon.namespace == "n" && daemon.id == "i" && daemon.debug)
    }

    @Test(arguments: [
        (["-id", "x", "start"], "-namespace is required"),
        (["-namespace", "n", "start"], "-id is required"),
        (["-namespace", "n", "-id", "x", "-bogus", "start"], "not defined: -bogus"),
        (["-namespace", "n", "-id", "x", "frobnicate"], "unknown action"),
        (["-namespace", "n", "-id", "../x", "start"], "plain names"),
        (["-namespace", "n", "-id"], "needs an argument"),
        (["-namespace", "n", "-id", "x"], "needs -socket"),
        (["-namespace", "n", "-id", "x", "-debug=maybe", "start"], "invalid boolean"),
    ])
    func rejectsBadLines(arguments: [String], message: String) {
        #expect {
            try ShimArguments.parse(arguments)
        } throws: { error in
            guard let error = error as? ShimError else { return false }
            return error.code == .invalidArgument && error.message.contains(message)
        }
    }

    @Test func statusCodesFollowErrdefs() {
        #expect(ShimError(.notFound, "x").ttrpcStatus.code == .notFound)
        #expect(ShimError(.alreadyExists, "x").ttrpcStatus.code == .alreadyExists)
        #expect(ShimError(.failedPrecondition, "x").ttrpcStatus.code == .failedPrecondition)
        #expect(ShimError(.unimplemented, "x").ttrpcStatus.code == .unimplemented)
        #expect(ShimError(.invalidArgument, "x").ttrpcStatus.code == .invalidArgument)
    }

    @Test func socketPathsAreShortAndDistinct() throws {
        let a = try ShimPaths(stateRoot: "/run/qemubox", namespace: "default", id: String(repeating: "a", count: 64))
        let b = try ShimPaths(stateRoot: "/run/qemubox", namespace: "default", id: String(repeating: "a", count: 63))
        #expect(a.socket.utf8.count < 108)
        #expect(a.socket != b.socket)
        #expect(a.stateDirectory != b.stateDirectory)
        // A CRI id (64 characters) gets a digest as its directory: the VM's sockets below fit sun_path.
        #expect(a.stateDirectory == "/run/qemubox/default/" + PodSpec.digest(String(repeating: "a", count: 64)))
        #expect((a.vmDirectory + "/qmp-control.sock").utf8.count <= 103)
        let short = try ShimPaths(stateRoot: "/run/qemubox", namespace: "default", id: "web-1")
        #expect(short.stateDirectory == "/run/qemubox/default/web-1", "short ids keep their name")
        #expect(throws: ShimError.self) {
            try ShimPaths(stateRoot: "/" + String(repeating: "d", count: 80), namespace: "n", id: "i")
        }
    }
}
