import Foundation

/// `[jail]`: how each VM's QEMU is confined (``QEMUJail``).
///
/// ```toml
/// [jail]
/// enabled = true                  # off only to diagnose; the shim runs as root, QEMU need not
/// first_id = 1500000000           # uids/gids of jailed QEMUs: first_id … first_id + id_count - 1
/// id_count = 65536
/// seccomp = "enforce"             # enforce | log | off (log: allow and audit-log what the list lacks)
/// ```
public struct JailSettings: Sendable, Hashable {
    /// Jail QEMU (when the shim runs as root, which it does under containerd).
    public var enabled = true
    /// First uid and gid of the range.
    public var firstID = QEMUJail.defaultFirstID
    /// Ids in the range.
    public var idCount: UInt32 = 65_536
    /// The seccomp mode.
    public var seccomp = QEMUJail.SeccompMode.enforce

    /// The defaults.
    public init() {}

    /// The jail these settings give (`QEMUBOX_JAIL_SECCOMP` overriding the seccomp mode),
    /// nil when off or when not running as root.
    public var jail: QEMUJail? {
        guard enabled, geteuid() == 0 else { return nil }
        return QEMUJail(firstID: firstID, idCount: idCount, seccomp: seccomp).overridden()
    }

    static func parse(_ table: TOMLTable, source: String) throws -> JailSettings {
        var settings = JailSettings()
        for key in table.keys.sorted() {
            guard let value = table[key] else { continue }
            let name = "jail.\(key)"
            func wrong(_ expected: String) -> QemuboxError { wrongType(name, expected, value, source) }
            switch key {
            case "enabled":
                guard let b = value.bool else { throw wrong("a boolean") }
                settings.enabled = b
            case "first_id", "id_count":
                guard let i = value.int else { throw wrong("an integer") }
                guard i > 0, i < Int(UInt32.max) else {
                    throw QemuboxError(.invalidConfiguration, "\(source): \(name) = \(i) is out of range (1…\(UInt32.max - 1))")
                }
                if key == "first_id" { settings.firstID = UInt32(i) } else { settings.idCount = UInt32(i) }
            case "seccomp":
                guard let s = value.string else { throw wrong("a string") }
                guard let mode = QEMUJail.SeccompMode(rawValue: s) else {
                    throw QemuboxError(.invalidConfiguration, "\(source): \(name) = \"\(s)\" is not one of enforce, log, off")
                }
                settings.seccomp = mode
            default:
                throw QemuboxError(.invalidConfiguration, "\(source): unknown key \"\(name)\"")
            }
        }
        do {
            try QEMUJail(firstID: settings.firstID, idCount: settings.idCount).validate()
        } catch let error as QemuboxError {
            throw QemuboxError(.invalidConfiguration, "\(source): [jail]: \(error.message)")
        }
        return settings
    }
}
