import Foundation
import ProcessSpawn
import NIOConcurrencyHelpers

extension QEMUJail {
    /// What one jailed QEMU sees besides `/usr`: files bound into its root at their host paths.
    struct RootFiles: Sendable {
        /// Bound read-only (kernel, initrd).
        var readOnly: [String] = []
        /// Bound read-write, not executable (the VM's own RAM file).
        var readWrite: [String] = []
        /// Device nodes beyond the standard ones (e.g. `/dev/kvm`).
        var devices: [String] = []
        /// Bound read-only and executable (a QEMU binary outside `/usr`).
        var executables: [String] = []
        /// A procfs showing only the jail's own processes (`hidepid=invisible,subset=pid`), for
        /// `/proc/self/fd/N` (a RAM descriptor).
        var procfs = false
    }

    /// Device nodes every jailed QEMU gets.
    static let standardDevices = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]

    /// Top-level names that hold the dynamic loader and libraries: recreated as the same
    /// symlinks (merged `/usr`) or bound read-only when they are directories.
    static let loaderDirectories = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]

    /// The steps that build the root on `root`: `/usr` read-only (nosuid, nodev), the
    /// loader's symlinks or directories, `/dev` with the device nodes, and `files` at their
    /// host paths (resolved, so no symlink is followed inside the jail).
    static func rootSteps(root: String, files: RootFiles) throws -> [JailSpec.Step] {
        typealias Step = JailSpec.Step
        var steps: [Step] = []
        var made: Set<String> = ["/"]
        func makeParents(of path: String) {
            var current = ""
            for part in path.split(separator: "/").dropLast() {
                current += "/" + part
                if made.insert(current).inserted { steps.append(Step(kind: .directory, target: root + current)) }
            }
        }
        steps.append(Step(kind: .bindDirectory, readOnly: true, source: "/usr", target: root + "/usr"))
        made.insert("/usr")
        for name in loaderDirectories {
            var st = stat()
            guard lstat("/" + name, &st) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFLNK {
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/" + name)
                steps.append(Step(kind: .symlink, source: target, target: root + "/" + name))
            } else if st.st_mode & S_IFMT == S_IFDIR {
                steps.append(Step(kind: .bindDirectory, readOnly: true, source: "/" + name, target: root + "/" + name))
            }
            made.insert("/" + name)
        }
        steps.append(Step(kind: .directory, target: root + "/dev"))
        made.insert("/dev")
        for device in standardDevices + files.devices {
            steps.append(Step(kind: .bindFile, noDev: false, noExec: true, source: device, target: root + device))
        }
        func bind(_ path: String, readOnly: Bool, executable: Bool = false) throws {
            let resolved = try resolve(path)
            // Already visible (e.g. a kernel under /usr).
            if resolved.hasPrefix("/usr/") { return }
            guard !made.contains(resolved) else { return }
            makeParents(of: resolved)
            steps.append(Step(kind: .bindFile, readOnly: readOnly, noExec: !executable, source: resolved, target: root + resolved))
            made.insert(resolved)
        }
        for path in files.executables { try bind(path, readOnly: true, executable: true) }
        for path in files.readOnly { try bind(path, readOnly: true) }
        for path in files.readWrite { try bind(path, readOnly: false) }
        if files.procfs { steps.append(Step(kind: .procfs, target: root + "/proc")) }
        return steps
    }

    /// `path` made absolute with every symlink resolved.
    static func resolve(_ path: String) throws -> String {
        guard let resolved = realpath(path, nil) else {
            throw QemuboxError(.spawnFailed, "jail: cannot resolve \(path): \(String(cString: strerror(errno)))")
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

extension QEMUJail {
    /// The spawner's jail for one resolved machine (its paths already resolved, see
    /// ``QEMULaunch/jailedMachine(_:identity:stateDirectory:)``), built on `root`.
    func spec(for m: ResolvedMachine, binary: String, identity: JailIdentity, root: String) throws -> JailSpec {
        if mkdir(root, 0o755) != 0, errno != EEXIST {
            throw QemuboxError(.spawnFailed, "mkdir \(root): \(String(cString: strerror(errno)))")
        }
        let d = m.description
        var files = RootFiles()
        files.readOnly = [d.kernel.kernelPath] + (d.kernel.initrdPath.map { [$0] } ?? [])
        if let memory = d.memoryFile {
            if memory.descriptor == nil { files.readWrite = [memory.path] } else { files.procfs = true }
        }
        files.executables = [binary]
        var groups: [UInt32] = []
        if m.host.accelerator.accelerator == .kvm {
            files.devices.append("/dev/kvm")
            // /dev/kvm is root:kvm 0660: QEMU gets the group, nothing else of it.
            var st = stat()
            if stat("/dev/kvm", &st) == 0, st.st_gid != 0 { groups.append(st.st_gid) }
        }
        return JailSpec(
            root: root, steps: try Self.rootSteps(root: root, files: files),
            uid: identity.id, gid: identity.id, groups: groups,
            filter: try Self.compiledAllowList(seccomp))
    }

    private static let compiled = NIOLockedValueBox<[SeccompMode: SeccompProgram]>([:])

    /// `allowedSystemCalls` compiled once per process and mode.
    static func compiledAllowList(_ mode: SeccompMode = .enforce) throws -> SeccompProgram {
        if mode == .off { return .empty }
        return try compiled.withLockedValue { cache in
            if let cached = cache[mode] { return cached }
            let program = try SeccompProgram.allowList(allowedSystemCalls, logOnly: mode == .log)
            cache[mode] = program
            return program
        }
    }
}
