import Foundation

/// The record a running machine keeps in its state directory (`qemu.json`), so that
/// a later process can find and reap a QEMU whose owner died without cleaning up.
///
/// A pid alone is not an identity (pids are reused), so the record also holds the
/// process start time (field 22 of `/proc/PID/stat`) and the `-name` marker that is
/// in QEMU's command line; ``VMStateRecord/cleanupStale(stateDirectory:procRoot:)``
/// kills only a process that matches all three.
public struct VMStateRecord: Codable, Sendable, Hashable {
    /// File name of the record inside the state directory.
    public static let fileName = "qemu.json"

    /// QEMU's pid.
    public var pid: Int32
    /// Start time in clock ticks since boot, from /proc/PID/stat.
    public var startTime: UInt64
    /// The machine's name; QEMU's argv contains `-name NAME,process=qemubox-NAME`.
    public var name: String
    /// QEMU binary.
    public var binary: String

    /// Creates a record.
    public init(pid: Int32, startTime: UInt64, name: String, binary: String) {
        self.pid = pid
        self.startTime = startTime
        self.name = name
        self.binary = binary
    }

    /// Writes the record atomically (temp file + rename).
    func write(to stateDirectory: String) throws {
        let path = stateDirectory + "/" + Self.fileName
        do {
            let data = try JSONEncoder().encode(self)
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw QemuboxError(.stateDirectory, "write \(path): \(error)")
        }
    }

    /// Reads the record of a state directory, nil if there is none.
    public static func read(from stateDirectory: String) throws -> VMStateRecord? {
        let path = stateDirectory + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(VMStateRecord.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw QemuboxError(.stateDirectory, "read \(path): \(error)")
        }
    }

    /// Start time (clock ticks since boot) of a process, from `/proc/PID/stat`.
    public static func startTime(of pid: Int32, procRoot: String = "/proc") -> UInt64? {
        guard let fields = statFields(of: pid, procRoot: procRoot), fields.count > 19 else { return nil }
        return UInt64(fields[19])  // field 22
    }

    /// The fields of `/proc/PID/stat` after "pid (comm)": index 0 is field 3 (state). The
    /// command name may hold spaces and parentheses, so the split starts after the last ")".
    static func statFields(of pid: Int32, procRoot: String = "/proc") -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "\(procRoot)/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// Whether `pid` is still the QEMU this record describes (start time and `-name` marker match).
    public func matchesLiveProcess(procRoot: String = "/proc") -> Bool {
        guard let st = Self.startTime(of: pid, procRoot: procRoot), st == startTime else { return false }
        guard let raw = FileManager.default.contents(atPath: "\(procRoot)/\(pid)/cmdline") else { return false }
        let args = raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard let i = args.firstIndex(of: "-name"), i + 1 < args.count else { return false }
        return args[i + 1] == "\(name),process=qemubox-\(name)"
    }

    /// What ``cleanupStale(stateDirectory:procRoot:)`` found and did.
    public enum CleanupOutcome: Sendable, Hashable {
        /// No record: nothing ran from this directory (or it was cleaned already).
        case nothingRecorded
        /// The recorded process is gone (or the pid now belongs to someone else); files removed.
        case processGone
        /// The recorded QEMU was still running; it was killed and the files removed.
        case killed(pid: Int32)
    }

    /// Finishes the cleanup of a state directory whose owner may have died: if the
    /// recorded QEMU still runs (identity verified), SIGKILL it and wait until it is
    /// gone (its new parent — init or a subreaper — reaps it); then remove the
    /// directory. Idempotent.
    @discardableResult
    public static func cleanupStale(stateDirectory: String, procRoot: String = "/proc") async throws -> CleanupOutcome {
        let record: VMStateRecord?
        do {
            record = try read(from: stateDirectory)
        } catch {
            // An unreadable record cannot name a process; the directory still goes.
            record = nil
        }
        var outcome = CleanupOutcome.nothingRecorded
        if let record {
            outcome = .processGone
            if record.matchesLiveProcess(procRoot: procRoot) {
                kill(record.pid, SIGKILL)
                outcome = .killed(pid: record.pid)
                // Not our child (or already reparented): poll until the identity disappears.
                let deadline = ContinuousClock.now + .seconds(10)
                while record.matchesLiveProcess(procRoot: procRoot) {
                    if let state = processState(record.pid, procRoot: procRoot), state == "Z" {
                        // A zombie of ours (same owner process): reap it.
                        var status: Int32 = 0
                        _ = waitpid(record.pid, &status, WNOHANG)
                    }
                    if ContinuousClock.now > deadline {
                        throw QemuboxError(.timeout, "stale QEMU \(record.pid) did not exit after SIGKILL")
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }
        if FileManager.default.fileExists(atPath: stateDirectory) {
            // Another remover (a supervisor still alive in this process) may be deleting
            // files under it at the same time: what vanished meanwhile is not an error.
            var attempts = 0
            while FileManager.default.fileExists(atPath: stateDirectory) {
                do {
                    try FileManager.default.removeItem(atPath: stateDirectory)
                } catch {
                    attempts += 1
                    guard attempts < 5, FileManager.default.fileExists(atPath: stateDirectory) else {
                        if !FileManager.default.fileExists(atPath: stateDirectory) { break }
                        throw QemuboxError(.stateDirectory, "remove \(stateDirectory): \(error)")
                    }
                }
            }
        }
        return outcome
    }

    static func processState(_ pid: Int32, procRoot: String) -> Character? {
        guard let stat = try? String(contentsOfFile: "\(procRoot)/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ").first?.first
    }
}
