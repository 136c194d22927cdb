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

    /// Regular files (and links) under `root`, as absolute paths of the installed system.
    static func files(_ root: String) -> Set<String> {
        Set(tree(root).filter { path in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory) && !isDirectory.boolValue
        }.map { "/" + $0 })
    }

    @discardableResult
    static func install(_ installer: String, _ arguments: String) async throws -> String {
        let result = try await Shell.run("\(installer) \(arguments)", timeout: .seconds(300))
        try #require(result.status == 0, "install.sh \(arguments): \(result.stderr)\(result.stdout)")
        return result.stdout
    }

    @Test(.enabled(if: available))
    func releaseInstallsRunsAContainerAndUninstallsToNothing() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-release") { dir in
            let release = try await Self.build(into: dir + "/out")
            try await Shell.check("mkdir -p \(dir)/unpacked && tar -C \(dir)/unpacked -xzf \(release.tarball)")
            let unpacked = try #require(try FileManager.default.contentsOfDirectory(atPath: dir + "/unpacked").first)
            let installer = "\(dir)/unpacked/\(unpacked)/install.sh"

            // Install into an empty root; what --list announces is what lands.
            let root = dir + "/root"
            try await Self.install(installer, "--destdir \(root)")
            let listed = Set(try await Self.install(installer, "--list").split(separator: "\n").map(String.init))
            #expect(Self.files(root).subtracting(["/usr/local/share/qemubox/install-manifest"]) == listed)
            #expect(listed.contains("/usr/local/bin/containerd-shim-qemubox-v1"))
            #expect(listed.contains("/etc/qemubox/config.toml"))

            // The operator edits the installed configuration (state and caches under this test's
            // directory); the kernel and guest image are the installed ones, found beside the shim.
            let config = root + "/etc/qemubox/config.toml"
            let edit = """

                state_dir = "\(dir)/state"
                cache_dir = "\(dir)/cache"
                writable_layer_mib = 256

                """
            let handle = try #require(FileHandle(forWritingAtPath: config))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(edit.utf8))
            try handle.close()
            let edited = try String(contentsOfFile: config, encoding: .utf8)

            try await ConcurrencyLimit.vms.run {
                let containerd = try PrivateContainerd(
                    dir: dir + "/containerd", shim: root + "/usr/local/bin/containerd-shim-qemubox-v1", configFile: config)
                do {
                    try await containerd.start()
                    try await containerd.importImage()
                    let run = try await containerd.ctr(
                        "run --rm --runtime io.containerd.qemubox.v1 \(PrivateContainerd.image) rel1 sh -c 'echo hello from the release; uname -r'")
                    #expect(run.status == 0, "\(run.stderr) \(containerd.log())")
                    #expect(run.stdout.contains("hello from the release"), "\(run.stdout)")
                    // The VM booted the installed kernel and image (the shim logs them to containerd).
                    let log = try String(contentsOfFile: containerd.dir + "/containerd.log", encoding: .utf8)
                    #expect(log.contains("kernel=\(root)/usr/local/share/qemubox/vmlinux"), "\(containerd.log())")
                    #expect(log.contains("image=\(root)/usr/local/share/qemubox/qemubox-guest.erofs"), "\(containerd.log())")
                } catch {
                    await containerd.tearDown()
                    throw error
                }
                await containerd.tearDown()
            }

            // A second install changes nothing and keeps the edit.
            let again = try await Self.install(installer, "--destdir \(root)")
            #expect(again.contains("already installed and current"), "\(again)")
            #expect(!again.contains("installed /"), "\(again)")
            #expect(try String(contentsOfFile: config, encoding: .utf8) == edited)

            // Uninstall keeps the edited configuration, --purge takes it; nothing is left.
            let removed = try await Self.install(installer, "--destdir \(root) --uninstall")
            #expect(removed.contains("kept /etc/qemubox/config.toml"), "\(removed)")
            #expect(Self.files(root) == ["/etc/qemubox/config.toml", "/usr/local/share/qemubox/install-manifest"])
            try await Self.install(installer, "--destdir \(root) --uninstall --purge")
            #expect(Self.tree(root).isEmpty, "left after uninstall: \(Self.tree(root))")
        }
    }
}
