import Foundation

/// Prerequisites of integration tests: external tools and devices.
///
/// A test that needs something absent is skipped with the reason, except under CI
/// (`CI=true`), where everything can be installed and a skip would hide a broken
/// install step: there the test runs and fails loudly instead.
public enum Prerequisite {
    /// True when running under CI, where no prerequisite may be missing.
    public static var isCI: Bool {
        let value = ProcessInfo.processInfo.environment["CI"]?.lowercased()
        return value == "true" || value == "1"
    }

    /// Absolute path of an executable found on `PATH` (or in the usual sbin
    /// directories), or nil.
    public static func which(_ name: String) -> String? {
        if name.hasPrefix("/") {
            return FileManager.default.isExecutableFile(atPath: name) ? name : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/local/sbin"]
        for dir in dirs {
            let candidate = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }

    /// Whether a test needing all of `tools` should run: true when they are all
    /// present, or under CI (where the test then fails loudly if one is absent).
    /// Prints the skip reason otherwise.
    public static func tools(_ tools: String...) -> Bool {
        let missing = tools.filter { which($0) == nil }
        if missing.isEmpty { return true }
        if isCI { return true }
        FileHandle.standardError.write(Data(
            "SKIP: missing prerequisite(s) \(missing.joined(separator: ", ")); run scripts/install-deps.sh\n".utf8))
        return false
    }

    /// Whether the current user is root (needed for mounts, netns, TAP devices).
    public static var isRoot: Bool { geteuid() == 0 }
}
