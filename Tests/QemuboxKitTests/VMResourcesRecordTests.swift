import Foundation
import Testing
import TestSupport
@testable import QemuboxKit

/// The resize record `qemubox ps` reads: round trip, and every bad file refused.
@Suite struct VMResourcesRecordTests {
    @Test func roundTripAndRefusals() async throws {
        try await TemporaryDirectory.with { dir in
            #expect(try VMResourcesRecord.read(from: dir) == nil, "no record: the boot size applies")
            let record = VMResourcesRecord(vcpus: 3, memoryMiB: 896, maxVCPUs: 4, maxMemoryMiB: 1024)
            try record.write(to: dir)
            #expect(try VMResourcesRecord.read(from: dir) == record)
            let path = dir + "/" + VMResourcesRecord.fileName
            for bad in ["{", #"{"vcpus":0,"memoryMiB":896,"maxVCPUs":4,"maxMemoryMiB":1024}"#,
                        #"{"vcpus":5,"memoryMiB":896,"maxVCPUs":4,"maxMemoryMiB":1024}"#,
                        #"{"vcpus":1,"memoryMiB":2048,"maxVCPUs":4,"maxMemoryMiB":1024}"#,
                        String(repeating: " ", count: 5000)] {
                try bad.write(toFile: path, atomically: true, encoding: .utf8)
                #expect(throws: QemuboxError.self, "\(bad.prefix(60))") { try VMResourcesRecord.read(from: dir) }
            }
        }
    }
}
