import Foundation
import OCISpec
import Testing

@Suite("Image spec models")
struct ImageSpecTests {
    @Test("index, manifest and config round-trip exactly, unknown members included")
    func roundTrips() throws {
        let index = try expectLosslessRoundTrip(ImageIndex.self, Data(Fixtures.index.utf8))
        try index.validate()
        #expect(index.manifests.count == 3)
        #expect(index.manifest(os: "linux", architecture: "arm64")?.size == 7682)
        #expect(index.manifest(os: "linux", architecture: "arm64", variant: "v7") == nil)
        #expect(index.manifests[2].platform?.osVersion == "6.1")
        #expect(index.manifests[2].platform?.osFeatures == ["f"])
        #expect(index.manifests[1].decodedData == Data("{}".utf8))
        #expect(extensionEntries(index) == xMembers(try RefJSON.parse(Data(Fixtures.index.utf8))))

        let manifest = try expectLosslessRoundTrip(ImageManifest.self, Data(Fixtures.manifest.utf8))
        try manifest.validate()
        #expect(manifest.layers[0].size == Int64.max)
        #expect(manifest.config.decodedData == Data("{}".utf8))
        #expect(manifest.layers[1].digest.algorithm == "sha512")
        #expect(extensionEntries(manifest) == xMembers(try RefJSON.parse(Data(Fixtures.manifest.utf8))))

        let config = try expectLosslessRoundTrip(ImageConfiguration.self, Data(Fixtures.imageConfig.utf8))
        try config.validate()
        #expect(config.config?.entrypoint == ["/bin/my-app-binary"])
        #expect(config.rootfs?.diffIDs?.count == 2)
        #expect(config.history?[1].emptyLayer == true)
        #expect(config.osVersion == "10.0")
        var expected = xMembers(try RefJSON.parse(Data(Fixtures.imageConfig.utf8)))
        expected.formUnion(["$.config Healthcheck", "$.config OnBuild", "$.config Shell"])
        #expect(extensionEntries(config) == expected)
        // Together the fixtures set every modelled property somewhere.
        #expect(unexercisedFields([index, manifest, config] as [Any]) == [])
    }

    @Test("digest format", arguments: [
        ("sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f", true),
        ("sha512:" + String(repeating: "ab", count: 64), true),
        ("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", true),
        ("sha256:E692418E4CBAF90CA69D05A66403747BAA33EE08806650B51FAB815AD7FC331F", false),
        ("sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331", false),
        ("sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331fz", false),
        ("e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f", false),
        ("SHA256:abc", false),
        ("sha256:", false),
        ("sha256+:abc", false),
        ("sha256:ab/c", false),
    ])
    func digests(value: String, valid: Bool) {
        let digest = Digest(rawValue: value)
        let error = Result { () throws(OCISpecError) in try digest.validate(path: "digest") }
        switch error {
        case .success: #expect(valid, "\(value) should be rejected")
        case .failure(let error):
            #expect(!valid, "\(value) should be accepted: \(error)")
            #expect(error.code == .invalidValue && error.path == "digest")
        }
        let constructed = try? Digest(validating: value)
        #expect((constructed != nil) == valid)
    }

    @Test("descriptor and document rules are reported with paths")
    func descriptorRules() throws {
        let good = ImageDescriptor(mediaType: OCIMediaType.layerGzip,
                                   digest: "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0", size: 10)
        try good.validate()
        var manifest = ImageManifest(config: good, layers: [good, good])
        try manifest.validate()
        manifest.layers[1].size = -1
        manifest.layers[0].mediaType = "not a media type"
        manifest.config.digest = "sha256:short"
        manifest.schemaVersion = 1
        let report = manifest.validationReport()
        #expect(report.errors.map(\.description) == [
            "schemaVersion: must be 2, got 1",
            "config.digest: sha256 digest must be 64 lowercase hex characters, got \"short\"",
            "layers[0].mediaType: malformed media type \"not a media type\"",
            "layers[1].size: must be >= 0, got -1",
        ])
        var inline = good
        inline.data = "e30="
        #expect(throws: OCISpecError(.invalidValue, path: "data", "holds 2 bytes but size is 10")) { try inline.validate() }
        inline.mediaType = nil
        inline.size = 2
        #expect(throws: OCISpecError(.missingField, path: "mediaType", "required")) { try inline.validate() }

        var index = ImageIndex(manifests: [good])
        index.mediaType = OCIMediaType.imageManifest
        #expect(throws: OCISpecError.self) { try index.validate() }
        #expect(index.validationReport().errors.map(\.path) == ["mediaType"])
        #expect(OCIMediaType.isWellFormed("application/vnd.example+json"))
        #expect(!OCIMediaType.isWellFormed("application/"))
        #expect(!OCIMediaType.isWellFormed("application/json; charset=utf-8"))
    }

    @Test("missing required members and negative sizes are caught")
    func requiredMembers() throws {
        let noDigest = #expect(throws: OCISpecError.self) {
            try ImageIndex(json: Data(#"{"schemaVersion":2,"manifests":[{"mediaType":"a/b","size":1}]}"#.utf8))
        }
        #expect(noDigest?.description == "manifests[0].digest: required")
        var config = try ImageConfiguration(json: Data(Fixtures.imageConfig.utf8))
        config.history?.append(.init(createdBy: "RUN true"))
        config.rootfs?.type = "layer"
        config.os = nil
        #expect(config.validationReport().errors.map(\.description) == [
            "os: required",
            "rootfs.type: must be \"layers\", got \"layer\"",
            "history: 3 non-empty layer entries but 2 diff_ids",
        ])
    }
}
