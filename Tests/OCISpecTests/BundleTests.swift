import Foundation
import OCISpec
import Testing
import TestSupport

@Suite("RuntimeSpec bundles")
struct BundleTests {
    @Test("save writes config.json atomically and load reads back the same spec")
    func saveAndLoad() async throws {
        try await TemporaryDirectory.with { dir in
            let spec = try RuntimeSpec(json: Data(Fixtures.fullRuntimeSpec.utf8))
            try spec.save(bundle: dir)
            #expect(try RuntimeSpec.load(bundle: dir) == spec)
            // Overwrite with a modified copy: the file is replaced, nothing else is left behind.
            let modified = spec.with { $0.hostname = "other" }
            try modified.save(bundle: dir, pretty: false)
            #expect(try RuntimeSpec.load(bundle: dir).hostname == "other")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["config.json"])
            let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/config.json")
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o644)
            let onDisk = try RefJSON.parse(Data(contentsOf: URL(fileURLWithPath: dir + "/config.json")))
            #expect(onDisk == (try RefJSON.parse(modified.jsonData())))
        }
    }

    @Test("a failed save leaves the existing file untouched and no temporary file")
    func failedSave() async throws {
        try await TemporaryDirectory.with { dir in
            let spec = RuntimeSpec()
            // Target is a directory: rename fails after the temp file was written.
            try FileManager.default.createDirectory(atPath: dir + "/config.json/inner", withIntermediateDirectories: true)
            let error = #expect(throws: OCISpecError.self) { try spec.save(bundle: dir) }
            #expect(error?.code == .io)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["config.json"])
            // Missing directory: cannot even create the temp file.
            let missing = #expect(throws: OCISpecError.self) { try spec.save(bundle: dir + "/absent") }
            #expect(missing?.code == .io)
        }
    }

    @Test("loading reports missing files, bad JSON and bad types with codes and paths")
    func loadErrors() async throws {
        try await TemporaryDirectory.with { dir in
            let missing = #expect(throws: OCISpecError.self) { try RuntimeSpec.load(bundle: dir) }
            #expect(missing?.code == .io)
            try Data("{not json".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
            let garbage = #expect(throws: OCISpecError.self) { try RuntimeSpec.load(bundle: dir) }
            #expect(garbage?.code == .malformedJSON)
            try Data(#"{"ociVersion":"1.0.0","process":{"cwd":"/","terminal":"yes"}}"#.utf8)
                .write(to: URL(fileURLWithPath: dir + "/config.json"))
            let typed = #expect(throws: OCISpecError.self) { try RuntimeSpec.load(bundle: dir) }
            #expect(typed?.code == .typeMismatch)
            #expect(typed?.path == "process.terminal")
            #expect(typed?.description.hasPrefix("process.terminal: expected a boolean") == true)
        }
    }
}
