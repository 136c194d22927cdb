import Foundation
import QemuboxKit
import TestSupport

/// A private containerd 1.6 for one test: its own root, state, sockets and opt
/// directory under `dir`, the CRI plugin off (on with ``CRISettings``), qemubox's shim on
/// its PATH (opt/bin) and qemubox configured by `QEMUBOX_CONFIG` (inherited by the shims).
public final class PrivateContainerd: @unchecked Sendable {
    public let dir: String
    public let environment: [String: String]
    private var containerdPid: Int32?
    /// containerd's pid while it runs.
    public var processID: Int32? { containerdPid }
    public static let image = "docker.io/library/qemubox-busybox:latest"
    /// A namespace of its own: runc keeps state per namespace under /run/containerd/runc.
    /// With the CRI plugin on, CRI's own: `k8s.io`.
    public let namespace: String
    /// The CRI plugin's settings (nil: the plugin is disabled).
    public let cri: CRISettings?

    /// A network namespace (`/run/netns/NAME`) containerd, its shims and ctr run in
    /// (nil: the host's). ctr then also sees `cniConfDir` as /etc/cni/net.d and
    /// /usr/lib/cni as /opt/cni/bin (bind mounts in a mount namespace of its own), unless
    /// CRI is on (ctr then runs as it is: CRI runs CNI itself).
    public var networkNamespace: String?
    public var cniConfDir: String { dir + "/cni-conf" }

    public var socket: String { dir + "/c.sock" }
    public var stateRoot: String { dir + "/qb" }

    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// The shim binary of this build.
    public static var shimBinary: String? {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path,
            packageRoot + "/.build/debug",
        ].map { $0 + "/containerd-shim-qemubox-v1" }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The guest image this clone built (packaging/build-guest-image.sh), if any.
    public static var guestImage: String? { GuestImage.environment()["QEMUBOX_GUEST_IMAGE"] }

    /// Whether containerd and its tools can run here (root, containerd, ctr, runc).
    public static var available: Bool {
        guard Prerequisite.tools("containerd", "ctr", "runc", "containerd-shim-runc-v2", "busybox") else { return false }
        if Prerequisite.isCI { return true }
        guard Prerequisite.isRoot else {
            FileHandle.standardError.write(Data("SKIP: containerd tests need root\n".utf8))
            return false
        }
        return shimBinary != nil
    }

    /// Whether VMs can boot here too (guest kernel and image present), or CI.
    public static var vmAvailable: Bool {
        guard available else { return false }
        if Prerequisite.isCI { return true }
        do {
            var environment = ProcessInfo.processInfo.environment
            if let guestImage { environment["QEMUBOX_GUEST_IMAGE"] = guestImage }
            _ = try GuestAssets.locate(environment: environment)
            return Prerequisite.tools("qemu-system-x86_64", "mkfs.ext4")
        } catch {
            FileHandle.standardError.write(Data("SKIP: \(error)\n".utf8))
            return false
        }
    }

    /// - Parameters:
    ///   - qemubox: lines appended to the qemubox configuration this instance writes.
    ///   - shim: the shim binary (default: this build's).
    ///   - configFile: a qemubox configuration to use as it is instead of writing one
    ///     (an installed release's); `qemubox` is then ignored.
    ///   - containerdConfig: a containerd configuration to use as it is (its sockets must be
    ///     ``socket`` and ``socket``.ttrpc, its root and state under `dir`); the shim is then
    ///     found on `path`.
    ///   - path: containerd's PATH (default: this process's).
    public init(dir: String, qemubox extra: String = "", cri: CRISettings? = nil,
                shim: String? = nil, configFile: String? = nil, containerdConfig: String? = nil,
                path: String? = nil) throws {
        self.dir = dir
        self.cri = cri
        namespace = cri == nil ? "qbx" + String(UInt32.random(in: 0...UInt32.max), radix: 16) : CRISettings.namespace
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/opt/bin", withIntermediateDirectories: true)
        if containerdConfig == nil {
            guard let shim = shim ?? Self.shimBinary else { throw PeerError("containerd-shim-qemubox-v1 is not built") }
            try fm.createSymbolicLink(atPath: dir + "/opt/bin/containerd-shim-qemubox-v1", withDestinationPath: shim)
        }
        try """
            version = 2
            root = "\(dir)/root"
            state = "\(dir)/state"
            \(cri == nil ? "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]" : "")
            [grpc]
              address = "\(dir)/c.sock"
            [ttrpc]
              address = "\(dir)/c.sock.ttrpc"
            [plugins."io.containerd.internal.v1.opt"]
              path = "\(dir)/opt"
            \(cri?.configuration(dir: dir) ?? "")
            """.write(toFile: dir + "/containerd.toml", atomically: true, encoding: .utf8)
        if let containerdConfig {
            try fm.removeItem(atPath: dir + "/containerd.toml")
            try fm.copyItem(atPath: containerdConfig, toPath: dir + "/containerd.toml")
        }
        let pathEnvironment = path.map { ["PATH": $0] } ?? [:]
        if let configFile {
            // Only what the file says: no guest assets from this process's environment.
            environment = ["QEMUBOX_CONFIG": configFile, "QEMUBOX_KERNEL": "", "QEMUBOX_GUEST_IMAGE": "",
                           "QEMUBOX_KERNEL_FLAVOR": ""].merging(pathEnvironment) { $1 }
            return
        }
        var qemubox = """
            state_dir = "\(dir)/qb"
            cache_dir = "\(dir)/cache"
            writable_layer_mib = 256
            boot_timeout_seconds = 60

            """
        if let image = Self.guestImage { qemubox += "guest_image = \"\(image)\"\n" }
        try (qemubox + extra).write(toFile: dir + "/qemubox.toml", atomically: true, encoding: .utf8)
        environment = ["QEMUBOX_CONFIG": dir + "/qemubox.toml"].merging(pathEnvironment) { $1 }
    }

    /// Starts containerd (in the background of a shell that exits at once, so
    /// init reaps it) and waits until it answers.
    public func start() async throws {
        let binary = Prerequisite.which("containerd") ?? "/usr/bin/containerd"
        let enter = networkNamespace.map { "nsenter --net=\($0) " } ?? ""
        let out = try await Shell.check(
            "cd \(dir) && { \(enter)\(binary) --config \(dir)/containerd.toml --log-level debug </dev/null >>\(dir)/containerd.log 2>&1 & echo $!; }",
            environment: environment)
        guard let pid = Int32(out.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw PeerError("cannot start containerd: \(out)")
        }
        containerdPid = pid
        let up = await eventually(timeout: .seconds(30)) {
            (try? await Shell.run("ctr -a \(self.socket) version", timeout: .seconds(10)).status) == 0
        }
        guard up else { throw PeerError("containerd did not come up: \(log())") }
    }

    /// Imports the busybox test image.
    public func importImage() async throws {
        try await Shell.check("python3 \(Self.packageRoot)/scripts/make-busybox-image.py \(dir)/image.tar")
        try await ctrCheck("image import \(dir)/image.tar")
    }

    /// `ctr -a SOCK -n qbx ARGS` (a shell fragment).
    public func ctr(_ arguments: String, stdin: String? = nil, timeout: Duration = .seconds(180)) async throws -> Shell.Result {
        let command = "ctr -a \(socket) -n \(namespace) \(arguments)"
        // With CRI, CRI runs CNI (in containerd's namespace): ctr needs neither it nor --cni's paths.
        guard let networkNamespace, cri == nil else { return try await Shell.run(command, stdin: stdin, timeout: timeout) }
        // ctr --cni reads /etc/cni/net.d and /opt/cni/bin: the test's, in a mount namespace of ctr's own.
        let script = "mount --bind \(cniConfDir) /etc/cni/net.d && mount --bind /usr/lib/cni /opt/cni/bin && exec \(command)"
        return try await Shell.run("nsenter --net=\(networkNamespace) unshare -m --propagation private sh -c \(Shell.quote(script))",
                                   stdin: stdin, timeout: timeout)
    }

    /// A `ctr run --rm …` or `ctr task exec …` of the runc peer whose output a test compares
    /// with qemubox's: run once more when `complete` rejects the result. containerd 1.6's
    /// client closes and cancels a task's or exec's IO in `Delete` before waiting for it (its
    /// task.go and process.go), so output the runc shim copies after the exit event is lost now
    /// and then on a loaded host (seen: stdout empty, stderr there). Only the peer gets a second
    /// run: output qemubox loses is a bug to find.
    public func ctrPeer(_ arguments: String, complete: (Shell.Result) -> Bool) async throws -> Shell.Result {
        let first = try await ctr(arguments)
        if complete(first) { return first }
        print("runc peer lost output to containerd 1.6's IO race (\(first.stdout.debugDescription)); running once more")
        return try await ctr(arguments)
    }

    @discardableResult
    public func ctrCheck(_ arguments: String) async throws -> String {
        let result = try await ctr(arguments)
        guard result.status == 0 else {
            throw PeerError("ctr \(arguments) exited \(result.status): \(result.stderr)")
        }
        return result.stdout
    }

    /// The end of containerd's log (its shims' lines included): the last `last` characters.
    public func log(last: Int = 4000) -> String {
        (try? String(contentsOfFile: dir + "/containerd.log", encoding: .utf8)).map { String($0.suffix(last)) } ?? ""
    }

    /// Stops containerd (SIGTERM, then SIGKILL), leaving its shims running.
    public func stop() async {
        guard let pid = containerdPid else { return }
        containerdPid = nil
        kill(pid, SIGTERM)
        if !(await eventually(timeout: .seconds(10)) { kill(pid, 0) != 0 }) {
            kill(pid, SIGKILL)
            _ = await eventually(timeout: .seconds(10)) { kill(pid, 0) != 0 }
        }
    }

    /// Pids of processes whose command line mentions this instance's directory
    /// (its shims and their QEMUs), excluding containerd itself.
    public func leftoverProcesses() -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap(Int32.init).filter { pid in
            guard pid != getpid(), let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let text = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return text.contains(dir) && pid != containerdPid
        }
    }

    /// Pids of the qemubox shims serving task `id`.
    public func qemuboxShims(task id: String) -> [Int32] {
        leftoverProcesses().filter { pid in
            let cmd = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return cmd.contains("containerd-shim-qemubox-v1") && cmd.contains(id)
        }
    }

    /// Mounts under this instance's directory.
    public func mounts() -> [String] {
        let text = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            return fields.count > 1 && fields[1].hasPrefix(dir) ? String(fields[1]) : nil
        }
    }

    /// Stops containerd and everything it started for this test (by pid), unmounts.
    public func tearDown() async {
        _ = try? await ctr("task ls -q").stdout.split(separator: "\n").asyncForEach { id in
            _ = try? await self.ctr("task kill -s SIGKILL \(id)")
        }
        await stop()
        for pid in leftoverProcesses() { kill(pid, SIGKILL) }
        for mount in mounts().reversed() { _ = try? await Shell.run("umount -l \(mount)") }
        if cri == nil {
            rmdir("/run/containerd/runc/" + namespace)
            // runc leaves the namespace's cgroup, `/<namespace>` (and a killed task's below
            // it), in every hierarchy: remove the now empty tree, deepest first.
            let root = "/sys/fs/cgroup"
            for hierarchy in ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []) + [""] {
                let top = root + (hierarchy.isEmpty ? "" : "/" + hierarchy) + "/" + namespace
                let below = (FileManager.default.enumerator(atPath: top)?.allObjects as? [String]) ?? []
                for path in below.sorted(by: { $0.count > $1.count }) { rmdir(top + "/" + path) }
                rmdir(top)
            }
        }
    }
}

extension Sequence where Element: Sendable {
    /// `forEach` with an async body, one element after the other.
    public func asyncForEach(_ body: (Element) async throws -> Void) async rethrows {
        for element in self { try await body(element) }
    }
}
