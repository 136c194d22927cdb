import ContainerdTestSupport
import Foundation
import ProcessSpawn
import QemuboxKit
@testable import QemuboxOperator
import TestSupport
import Testing

/// `qemubox cache ls|prune` on a real cache: snapshot directories converted by
/// `EROFSLayerCache`, one image held open by a running process (as QEMU holds a VM's disks).
@Suite struct LayerCacheTests {
    typealias Result = LayerCacheReport.PruneResult

    /// A snapshot directory with a few files whose content depends on `seed`.
    static func snapshot(_ path: String, seed: Int, bytes: Int = 10_000) throws {
        try FileManager.default.createDirectory(atPath: path + "/etc", withIntermediateDirectories: true)
        try "layer \(seed)\n".write(toFile: path + "/etc/id", atomically: false, encoding: .utf8)
        var generator = SystemRandomNumberGenerator()
        try Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
            .write(to: URL(fileURLWithPath: path + "/data"))
    }

    /// Sets a file's atime and mtime to `secondsAgo` before now.
    static func age(_ path: String, _ secondsAgo: Double) {
        let then = Date().timeIntervalSince1970 - secondsAgo
        var times = [timespec](repeating: timespec(tv_sec: Int(then), tv_nsec: 0), count: 2)
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    /// A process that holds a file open (on its stdin) until stopped, as QEMU holds a disk.
    final class Holder {
        let pid: pid_t
        private var running = true

        init(_ path: String) throws {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw PeerError("open \(path)") }
            defer { close(fd) }
            pid = try ProcessSpawner.shared.spawnBlocking(.init(
                path: Prerequisite.which("sleep") ?? "/bin/sleep", arguments: ["600"], environment: [],
                descriptors: [(fd, Int32(0))]))
        }

        /// Kills and reaps it (once: the pid may belong to someone else afterwards).
        func stop() {
            guard running else { return }
            running = false
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
    }

    /// A pid that no process has (a child that already exited and was reaped).
    static func deadPid() throws -> pid_t {
        let pid = try ProcessSpawner.shared.spawnBlocking(.init(
            path: Prerequisite.which("true") ?? "/bin/true", arguments: [], environment: [], descriptors: []))
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        return pid
    }

    static func removed(_ result: Result) -> Set<String> { Set(result.decisions.filter(\.removed).map(\.key)) }
    static func reason(_ result: Result, _ key: String) -> String {
        result.decisions.first { $0.key == key }?.reason ?? "(no decision)"
    }

    @Test(.enabled(if: QemuboxBinary.available))
    func pruneNeverRemovesWhatIsInUse() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-cache") { dir in
            let cache = EROFSLayerCache(directory: dir + "/cache")
            var keys: [String: String] = [:]
            for (n, name) in ["old", "busy", "idle", "gone", "fresh"].enumerated() {
                try Self.snapshot(dir + "/snap/" + name, seed: n)
                let entry = try cache.image(for: dir + "/snap/" + name)
                #expect(!entry.cached)
                keys[name] = ((entry.path as NSString).lastPathComponent as NSString).deletingPathExtension
            }
            func path(_ name: String) -> String { dir + "/cache/" + (keys[name] ?? "?") + ".erofs" }
            Self.age(path("old"), 2 * 86400)
            Self.age(path("busy"), 3 * 3600)
            Self.age(path("idle"), 3 * 3600)
            Self.age(path("gone"), 86400)
            try FileManager.default.removeItem(atPath: dir + "/snap/gone")
            let partial = dir + "/cache/\(keys["old"] ?? "").erofs.tmp.\(try Self.deadPid()).77"
            try Data(count: 4096).write(to: URL(fileURLWithPath: partial))
            let config = try QemuboxBinary.configuration(in: dir, "cache_dir = \"\(dir)/cache\"\n")
            let holder = try Holder(path("busy"))
            defer { holder.stop() }

            let listed = try await QemuboxBinary.json([LayerCacheReport.Image].self, ["cache", "ls", "--config", config])
            #expect(listed.count == 5)
            #expect(listed.first?.key == keys["old"], "least recently used first")
            #expect(listed.first { $0.key == keys["busy"] }?.openBy == ["sleep[\(holder.pid)]"])
            #expect(listed.filter { !$0.openBy.isEmpty }.count == 1)
            #expect(listed.first { $0.key == keys["gone"] }?.sourceExists == false)
            #expect(listed.first { $0.key == keys["idle"] }?.source == dir + "/snap/idle")

            // No options: only the image of the removed snapshot and the dead conversion's file.
            let plain = try await QemuboxBinary.json(Result.self, ["cache", "prune", "--config", config])
            #expect(Self.removed(plain) == [keys["gone"] ?? "", (partial as NSString).lastPathComponent])
            #expect(Self.reason(plain, keys["busy"] ?? "") == "in use by sleep[\(holder.pid)]")
            #expect(Self.reason(plain, keys["fresh"] ?? "").contains("a container may be starting"))
            #expect(!FileManager.default.fileExists(atPath: path("gone")) && !FileManager.default.fileExists(atPath: partial))
            #expect(!FileManager.default.fileExists(atPath: dir + "/cache/" + (keys["gone"] ?? "") + ".source"))

            let older = try await QemuboxBinary.json(Result.self, ["cache", "prune", "--older-than", "1d", "--config", config])
            #expect(Self.removed(older) == [keys["old"] ?? ""])
            #expect(Self.reason(older, keys["old"] ?? "").hasPrefix("unused for 2d"))

            let dry = try await QemuboxBinary.json(Result.self, ["cache", "prune", "--all", "--dry-run", "--config", config])
            #expect(dry.dryRun && Self.removed(dry) == [keys["idle"] ?? ""])
            #expect(FileManager.default.fileExists(atPath: path("idle")))

            let all = try await QemuboxBinary.json(Result.self, ["cache", "prune", "--all", "--config", config])
            #expect(Self.removed(all) == [keys["idle"] ?? ""])
            #expect(all.freedBytes > 0)
            // The image in use survived every prune and is intact.
            #expect(FileManager.default.fileExists(atPath: path("busy")))
            try await Shell.check("fsck.erofs \(path("busy"))")
            #expect(FileManager.default.fileExists(atPath: path("fresh")))

            // Once nobody holds it (and it is not recently used), --all removes it too.
            holder.stop()
            let last = try await QemuboxBinary.json(Result.self, ["cache", "prune", "--all", "--config", config])
            #expect(Self.removed(last) == [keys["busy"] ?? ""])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/cache").sorted()
                == [keys["fresh"] ?? "", ].flatMap { [$0 + ".erofs", $0 + ".source"] })

            // The table form.
            let table = try await QemuboxBinary.run(["cache", "ls", "--config", config])
            #expect(table.status == 0 && table.stdout.contains(keys["fresh"] ?? "?") && table.stdout.contains("1 image(s)"))
        }
    }

    /// `--max-size` removes the least recently used images until the cache fits.
    @Test func maxSizeRemovesLeastRecentlyUsedFirst() throws {
        try TemporaryDirectory.withSync(prefix: "qbx-cache") { dir in
            let cache = EROFSLayerCache(directory: dir + "/cache", compression: .none)
            var paths: [String] = []
            for n in 0..<3 {
                try Self.snapshot(dir + "/snap/\(n)", seed: n, bytes: 200_000)
                paths.append(try cache.image(for: dir + "/snap/\(n)").path)
            }
            for (n, path) in paths.enumerated() { Self.age(path, Double(3 - n) * 3600) }  // 0 is the oldest
            let report = LayerCacheReport(directory: dir + "/cache")
            let sizes = report.list().map(\.allocatedBytes)
            let total = sizes.reduce(0, +)
            var options = LayerCacheReport.PruneOptions()
            options.maxBytes = total - 1
            let result = try report.prune(options)
            let removed = result.decisions.filter(\.removed).map(\.path)
            #expect(removed == [paths[0]])
            #expect(result.remainingBytes <= total - 1)
            #expect(result.decisions.first { $0.path == paths[0] }?.reason.contains("--max-size") == true)

            options.maxBytes = 0
            #expect(try report.prune(options).decisions.filter(\.removed).map(\.path) == [paths[1], paths[2]])
            #expect(report.list().isEmpty)
        }
    }

    /// A cache hit refreshes the image's last use, so a prune right after it keeps the image.
    @Test func cacheHitRefreshesLastUse() throws {
        try TemporaryDirectory.withSync(prefix: "qbx-cache") { dir in
            try Self.snapshot(dir + "/snap", seed: 1)
            let cache = EROFSLayerCache(directory: dir + "/cache")
            let first = try cache.image(for: dir + "/snap")
            Self.age(first.path, 86400)
            let report = LayerCacheReport(directory: dir + "/cache")
            let listed = try #require(report.list().first)
            #expect(Date().timeIntervalSince(listed.lastUsed) > 80000)
            #expect(try cache.image(for: dir + "/snap").cached)
            let refreshed = try #require(report.list().first)
            #expect(Date().timeIntervalSince(refreshed.lastUsed) < 60)
            // An image handed out between listing and removal is kept (compare-and-remove).
            let stale = try #require(cache.images().first)
            Self.age(first.path, 86400)
            #expect(try cache.remove(stale) == false)
            #expect(FileManager.default.fileExists(atPath: first.path))
        }
    }
}
