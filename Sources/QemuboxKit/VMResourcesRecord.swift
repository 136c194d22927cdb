import Foundation

/// What a running VM holds after a resize (`<vm directory>/resources.json`), written by
/// ``Pod`` after each change so that `qemubox ps` shows the live size instead of the boot
/// size in QEMU's command line. Written by the host only; a reader still checks it.
public struct VMResourcesRecord: Codable, Sendable, Hashable {
    /// The file's name in the VM's directory.
    public static let fileName = "resources.json"

    /// vCPUs online in the guest.
    public var vcpus: Int
    /// Guest memory (boot plus plugged), MiB.
    public var memoryMiB: Int
    /// The vCPU ceiling.
    public var maxVCPUs: Int
    /// The memory ceiling, MiB.
    public var maxMemoryMiB: Int

    /// Creates a record.
    public init(vcpus: Int, memoryMiB: Int, maxVCPUs: Int, maxMemoryMiB: Int) {
        self.vcpus = vcpus
        self.memoryMiB = memoryMiB
        self.maxVCPUs = maxVCPUs
        self.maxMemoryMiB = maxMemoryMiB
    }

    /// Writes the record into `directory` atomically.
    public func write(to directory: String) throws {
        do {
            try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: directory + "/" + Self.fileName), options: .atomic)
        } catch {
            throw QemuboxError(.stateDirectory, "cannot write \(directory)/\(Self.fileName): \(error)")
        }
    }

    /// The record in `directory`: nil when there is none, an error when it is unreadable,
    /// over 4 KiB, malformed or out of range.
    public static func read(from directory: String) throws -> VMResourcesRecord? {
        let path = directory + "/" + fileName
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard data.count <= 4096 else { throw QemuboxError(.stateDirectory, "\(path) is over 4 KiB") }
        let record: VMResourcesRecord
        do {
            record = try JSONDecoder().decode(VMResourcesRecord.self, from: data)
        } catch {
            throw QemuboxError(.stateDirectory, "\(path) is malformed: \(error)")
        }
        guard (1...255).contains(record.vcpus), record.vcpus <= record.maxVCPUs, record.maxVCPUs <= 255,
              (64...(1 << 22)).contains(record.memoryMiB), record.memoryMiB <= record.maxMemoryMiB,
              record.maxMemoryMiB <= 1 << 22 else {
            throw QemuboxError(.stateDirectory, "\(path) holds values out of range")
        }
        return record
    }
}
