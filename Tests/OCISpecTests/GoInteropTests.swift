import Foundation
import OCISpec
import Testing
import TestSupport

/// Checks our re-encoded documents with the Go runtime-spec types containerd
/// and runc use (Debian's specs-go, built in GOPATH mode).
@Suite("RuntimeSpec interop with Go specs-go", .serialized)
struct GoInteropTests {
    @Test("Go decodes our re-encoding of runc/crun/hand-written specs to the same specs.Spec",
          .enabled(if: Prerequisite.tools("go", "runc", "crun")))
    func goSeesTheSameSpec() async throws {
        let peer = try await GoPeer.build("ocispec-peer")
        try await TemporaryDirectory.with { dir in
            var sources: [String] = []
            for (i, command) in [["runc", "spec"], ["runc", "spec", "--rootless"], ["crun", "spec"],
                                 ["crun", "spec", "--rootless"]].enumerated() {
                let bundle = "\(dir)/gen\(i)"
                try FileManager.default.createDirectory(atPath: bundle, withIntermediateDirectories: true)
                try await runTool(command[0], Array(command.dropFirst()), in: bundle)
                sources.append(bundle + "/config.json")
            }
            let full = dir + "/full.json"
            try Data(Fixtures.fullRuntimeSpec.utf8).write(to: URL(fileURLWithPath: full))
            sources.append(full)
            for source in sources {
                let spec = try RuntimeSpec.load(contentsOf: source)
                let copy = source + ".swift.json"
                try spec.write(to: copy)
                let out = try await GoPeer.run(peer, ["compare", source, copy])
                #expect(String(decoding: out, as: UTF8.self) == "equal\n", "\(source)")
            }
            // The comparison does notice a change.
            let changed = try RuntimeSpec.load(contentsOf: full).with { $0.linux?.resources?.memory?.limit = 1 }
            try changed.write(to: dir + "/changed.json")
            await #expect(throws: PeerError.self) { try await GoPeer.run(peer, ["compare", full, dir + "/changed.json"]) }
        }
    }
}
