import ContainerdTestSupport
import Foundation
import QemuboxKit
import TestSupport
import Testing

/// The release as an operator gets it: `packaging/build-release.sh` builds the tarball and the
/// .deb; the tarball's `install.sh` installs into an empty root, a private containerd runs a
/// container through the installed shim, kernel, image and configuration alone, and uninstalling
/// leaves nothing; the units pass `systemd-analyze verify`; the .deb installs into a scratch dpkg
/// root holding exactly the files `install.sh` writes, and purges to nothing.
@Suite(.serialized) struct ReleaseTests {
    static var available: Bool {
        guard PrivateContainerd.vmAvailable else { return false }
        if Prerequisite.isCI { return true }
        return Prerequisite.tools("dpkg", "dpkg-deb", "systemd-analyze", "sha256sum", "strip")
    }

    /// The release built once per test run, into `dir`: (tarball, .deb).
    static func build(into dir: String) async throws -> (tarball: String, deb: String) {
        let result = try await Shell.run(
            "bash \(PrivateContainerd.packageRoot)/packaging/build-release.sh --out \(dir)", timeout: .seconds(1800))
        try #require(result.status == 0, "build-release.sh: \(result.stderr.suffix(3000))")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir)
        let tarball = try #require(files.first { $0.hasPrefix("qemubox-") && $0.hasSuffix("-linux-x86_64.tar.gz") })
        let deb = try #require(files.first { $0.hasPrefix("qemubox_") && $0.hasSuffix("_amd64.deb") })
        return (dir + "/" + tarball, dir + "/" + deb)
    }

    /// Every path under `root` (relative, sorted); empty when nothing is left.
    static func tree(_ root: String) -> [String] {
        ((FileManager.default.enumerator(atPath: root)?.allObjects as? [String]) ?? []).sorted()
    }

    /// Everything but directories under `root`, as absolute paths of the installed system.
    static func files(_ root: String) -> Set<String> {
        Set(tree(root).filter { !isDirectory(root + "/" + $0) }.map { "/" + $0 })
    }

    @discardableResult
    static func install(_ installer: String, _ arguments: String) async throws -> String {
        let result = try await Shell.run("\(installer) \(arguments)", timeout: .seconds(300))
        try #require(result.status == 0, "install.sh \(arguments): \(result.stderr)\(result.stdout)")
        return result.stdout
    }

    @Test(.enabled(if: available))
    func releaseInstallsRunsAndUninstallsAndPackagesTheSameFiles() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-release") { dir in
            let release = try await Self.build(into: dir + "/out")
            try await Shell.check("mkdir -p \(dir)/unpacked && tar -C \(dir)/unpacked -xzf \(release.tarball)")
            let unpacked = try #require(try FileManager.default.contentsOfDirectory(atPath: dir + "/unpacked").first)
            let installer = "\(dir)/unpacked/\(unpacked)/install.sh"
            try await Self.installRunUninstall(installer, dir: dir + "/beside")
            try await Self.dedicated(installer, dir: dir + "/dedicated")
            try await Self.debian(release.deb, installer, dir: dir + "/deb")
        }
    }

    /// Beside the host's containerd (the default): install into an empty root, run a container
    /// with the installed files, reinstall (nothing changes, the edited configuration stays),
    /// uninstall to nothing.
    static func installRunUninstall(_ installer: String, dir: String) async throws {
        let root = dir + "/root"
        try await install(installer, "--destdir \(root)")
        let listed = Set(try await install(installer, "--list").split(separator: "\n").map(String.init))
        #expect(files(root).subtracting(["/usr/local/share/qemubox/install-manifest"]) == listed)
        #expect(listed.contains("/usr/local/bin/containerd-shim-qemubox-v1"))
        #expect(listed.contains("/etc/qemubox/config.toml"))
        #expect(!listed.contains("/usr/local/lib/systemd/system/qemubox-containerd.service"))

        // The operator edits the installed configuration (state and caches under this test's
        // directory); the kernel and guest image are the installed ones, found beside the shim.
        let config = root + "/etc/qemubox/config.toml"
        try append(to: config, """

            state_dir = "\(dir)/state"
            cache_dir = "\(dir)/cache"
            writable_layer_mib = 256

            """)
        let edited = try String(contentsOfFile: config, encoding: .utf8)
        try await runContainer(PrivateContainerd(dir: dir + "/containerd", shim: root + "/usr/local/bin/containerd-shim-qemubox-v1",
                                                 configFile: config), root: root)

        // A second install changes nothing and keeps the edit.
        let again = try await install(installer, "--destdir \(root)")
        #expect(again.contains("already installed and current"), "\(again)")
        #expect(!again.contains("installed /"), "\(again)")
        #expect(try String(contentsOfFile: config, encoding: .utf8) == edited)

        // Uninstall keeps the edited configuration, --purge takes it; nothing is left.
        let removed = try await install(installer, "--destdir \(root) --uninstall")
        #expect(removed.contains("kept /etc/qemubox/config.toml"), "\(removed)")
        #expect(files(root) == ["/etc/qemubox/config.toml", "/usr/local/share/qemubox/install-manifest"])
        try await install(installer, "--destdir \(root) --uninstall --purge")
        #expect(tree(root).isEmpty, "left after uninstall: \(tree(root))")
    }

    /// `--dedicated`: the units pass `systemd-analyze verify`, and containerd started as
    /// qemubox-containerd.service starts it (its ExecStart, PATH and the installed
    /// containerd.toml, with root, state and sockets moved under the test's directory) runs a
    /// container; uninstalling leaves nothing.
    static func dedicated(_ installer: String, dir: String) async throws {
        let root = dir + "/root"
        try await install(installer, "--destdir \(root) --dedicated")
        let unitDirectory = root + "/usr/local/lib/systemd/system"
        let units = try FileManager.default.contentsOfDirectory(atPath: unitDirectory).sorted()
        #expect(units == ["qemubox-containerd.service", "qemubox-metrics.service", "qemubox-prune.service",
                          "qemubox-prune.timer"])
        // The units as systemd would see them had the root been /: the prefix's paths moved into it.
        try FileManager.default.createDirectory(atPath: dir + "/units", withIntermediateDirectories: true)
        for unit in units {
            let text = try String(contentsOfFile: unitDirectory + "/" + unit, encoding: .utf8)
            try text.replacingOccurrences(of: "/usr/local/", with: root + "/usr/local/")
                .write(toFile: dir + "/units/" + unit, atomically: true, encoding: .utf8)
        }
        let verify = try await Shell.run("cd \(dir)/units && systemd-analyze verify \(units.joined(separator: " "))")
        #expect(verify.status == 0 && verify.stderr.isEmpty, "systemd-analyze verify: \(verify.stderr)\(verify.stdout)")

        let service = try String(contentsOfFile: dir + "/units/qemubox-containerd.service", encoding: .utf8)
        let lines = service.split(separator: "\n").map(String.init)
        let path = try #require(lines.first { $0.hasPrefix("Environment=PATH=") }).dropFirst("Environment=PATH=".count)
        let execStart = try #require(lines.first { $0.hasPrefix("ExecStart=") })
        #expect(execStart == "ExecStart=/usr/bin/containerd --config /etc/qemubox/containerd.toml")
        let containerdDir = dir + "/containerd"
        let moved = try String(contentsOfFile: root + "/etc/qemubox/containerd.toml", encoding: .utf8)
            .replacingOccurrences(of: "/run/qemubox-containerd/containerd.sock", with: containerdDir + "/c.sock")
            .replacingOccurrences(of: "/run/qemubox-containerd", with: containerdDir + "/state")
            .replacingOccurrences(of: "/var/lib/qemubox-containerd", with: containerdDir + "/root")
        #expect(moved.contains("runtime_type = \"io.containerd.qemubox.v1\""))
        try FileManager.default.createDirectory(atPath: containerdDir, withIntermediateDirectories: true)
        try moved.write(toFile: dir + "/containerd.toml", atomically: true, encoding: .utf8)
        let config = root + "/etc/qemubox/config.toml"
        try append(to: config, "\nstate_dir = \"\(dir)/state\"\ncache_dir = \"\(dir)/cache\"\nwritable_layer_mib = 256\n")
        // No shim link of the test's own: the unit's PATH finds the installed one.
        let containerd = try PrivateContainerd(dir: containerdDir, configFile: config,
                                               containerdConfig: dir + "/containerd.toml", path: String(path))
        try await runContainer(containerd, root: root)

        // The prune service's commands run as the timer would start them (on the test's caches).
        let prune = try String(contentsOfFile: dir + "/units/qemubox-prune.service", encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("ExecStart=") }.map { $0.dropFirst("ExecStart=".count) }
        #expect(prune.count == 2)
        for command in prune {
            let result = try await Shell.run(String(command), environment: ["QEMUBOX_CONFIG": config])
            #expect(result.status == 0, "\(command): \(result.stderr)")
        }

        try await install(installer, "--destdir \(root) --uninstall --purge")
        #expect(tree(root).isEmpty, "left after uninstall: \(tree(root))")
    }

    /// The .deb in a scratch dpkg root: the files `install.sh --prefix /usr --dedicated` writes,
    /// configuration as conffiles (an edit survives a reinstall), and a purge leaves only dpkg's
    /// own database.
    static func debian(_ deb: String, _ installer: String, dir: String) async throws {
        let root = dir + "/root"
        try await Shell.check("mkdir -p \(root)/var/lib/dpkg/info \(root)/var/lib/dpkg/updates && touch \(root)/var/lib/dpkg/status")
        // Scripts unchrooted with DPKG_ROOT set (the root has no shell); the dependencies are the host's.
        let dpkg = "dpkg --root=\(root) --log=/dev/null --force-script-chrootless"
        try await Shell.check("\(dpkg) --force-depends -i \(deb)")
        let listed = Set(try await Shell.check("\(dpkg) -L qemubox").split(separator: "\n").map(String.init))
        let wouldInstall = Set(try await install(installer, "--prefix /usr --dedicated --list").split(separator: "\n").map(String.init))
        #expect(listed.filter { !isDirectory(root + $0) } == wouldInstall)
        #expect(files(root).subtracting(files(root + "/var/lib/dpkg").map { "/var/lib/dpkg" + $0 }) == wouldInstall)
        let status = try await Shell.check("\(dpkg) -s qemubox")
        #expect(status.contains("/etc/qemubox/config.toml"), "conffiles: \(status)")
        #expect(status.contains("/etc/qemubox/containerd.toml"), "conffiles: \(status)")

        try append(to: root + "/etc/qemubox/config.toml", "\nvcpus = 2\n")
        try await Shell.check("\(dpkg) --force-depends --force-confold -i \(deb)")
        #expect(try String(contentsOfFile: root + "/etc/qemubox/config.toml", encoding: .utf8).hasSuffix("\nvcpus = 2\n"))

        try await Shell.check("\(dpkg) --purge qemubox")
        let left = tree(root).filter { !$0.hasPrefix("var/lib/dpkg") && !["var", "var/lib"].contains($0) }
        #expect(left.isEmpty, "left after dpkg --purge: \(left)")
    }

    /// Starts `containerd`, runs a container with the qemubox runtime and checks it booted the
    /// kernel and image installed under `root`; tears containerd down whatever happens.
    static func runContainer(_ containerd: PrivateContainerd, root: String) async throws {
        try await ConcurrencyLimit.vms.run {
            do {
                try await containerd.start()
                try await containerd.importImage()
                let run = try await containerd.ctr(
                    "run --rm --runtime io.containerd.qemubox.v1 \(PrivateContainerd.image) rel sh -c 'echo hello from the release'")
                #expect(run.status == 0, "\(run.stderr) \(containerd.log())")
                #expect(run.stdout.contains("hello from the release"), "\(run.stdout)")
                // The shim logs (to containerd) the kernel and image it boots.
                let log = try String(contentsOfFile: containerd.dir + "/containerd.log", encoding: .utf8)
                #expect(log.contains("kernel=\(root)/usr/local/share/qemubox/vmlinux"), "\(containerd.log())")
                #expect(log.contains("image=\(root)/usr/local/share/qemubox/qemubox-guest.erofs"), "\(containerd.log())")
            } catch {
                await containerd.tearDown()
                throw error
            }
            await containerd.tearDown()
        }
    }

    static func append(to path: String, _ text: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
