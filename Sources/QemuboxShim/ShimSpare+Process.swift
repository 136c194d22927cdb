#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import QemuboxKit

extension ShimSpare {
    /// The spare process (`spare-vm DIR`, its lock on descriptor 3): starts the VM, waits
    /// for a claim and then serves the claiming task as its shim. Returns the exit status.
    static func run(directory: String, environment: [String: String]) async -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // The lock stays held (on another descriptor number) until this process exits.
        let lock = fcntl(3, F_DUPFD_CLOEXEC, 10)
        close(3)
        guard lock >= 0 else { return 2 }
        defer { close(lock) }
        let name = (directory as NSString).lastPathComponent
        // A spare starts and waits at a low priority (its QEMU inherits it): containers starting
        // meanwhile come first. The claim restores the normal priority.
        setNice(spareNice, ofThreadsOf: getpid())
        let configuration: QemuboxConfiguration
        do {
            configuration = try QemuboxShim.configuration(environment)
        } catch {
            _ = try? "\(error)\n".write(toFile: directory + "/" + logName, atomically: false, encoding: .utf8)
            return 1
        }
        let logFD = open(directory + "/" + logName, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        ShimLogHandler.bootstrap(fd: logFD >= 0 ? logFD : 2,
                                 level: Logger.Level(rawValue: configuration.logLevel) ?? .info)
        var logger = Logger(label: "qemubox.spare")
        logger[metadataKey: "spare"] = "\(name)"
        let stop = NIOLockedValueBox(false)
        let signals = [SIGTERM, SIGINT].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { stop.withLockedValue { $0 = true } }
            source.resume()
            return source
        }
        defer { for source in signals { source.cancel() } }

        var pod: PodConfiguration
        let sandbox: Sandbox
        let started = ContinuousClock.now
        do {
            pod = try PodConfiguration(id: "spare-" + name, namespace: "", stateDirectory: directory,
                                       host: configuration)
            pod.logger = logger
            pod.qemuNice = spareNice
            pod.templates?.memorySharing = .holder(executable: Spawn.executablePath(),
                                                   arguments: [QemuboxShim.templateMemoryHolderAction])
            sandbox = try await Pod.startSpare(pod)
        } catch {
            logger.error("cannot start the spare VM: \(error)")
            return 1
        }
        logger.info("spare VM started", metadata: ["took": "\(ContinuousClock.now - started)"])
        let templateKey = currentTemplateKey(pod)
        let claim: (fd: Int32, request: Claim)?
        do {
            claim = try await waitForClaim(directory: directory, sandbox: sandbox, templateKey: templateKey, pod: pod,
                                           idle: .seconds(configuration.warmSpareIdleSeconds), stop: stop, logger: logger)
        } catch {
            logger.error("spare: \(error)")
            claim = nil
        }
        guard let claim else {
            await sandbox.discard()
            try? FileManager.default.removeItem(atPath: directory)
            return 0
        }
        defer { close(claim.fd) }
        let status = await serve(claim.request, answer: claim.fd, sandbox: sandbox, directory: directory, logger: logger)
        await sandbox.discard()
        try? FileManager.default.removeItem(atPath: directory)
        return status
    }

    /// Becomes the shim of the claiming task: links its VM directory into the task's
    /// state, enters the bundle and runs the daemon with the VM.
    static func serve(_ request: Claim, answer: Int32, sandbox: Sandbox, directory: String, logger: Logger) async -> Int32 {
        let arguments: ShimArguments
        let paths: ShimPaths
        do {
            arguments = try ShimArguments.parse(request.arguments)
            guard arguments.action == .serve else { throw ShimError(.invalidArgument, "a claim names the daemon's arguments") }
            let configuration = try QemuboxShim.configuration(request.environment)
            paths = try ShimPaths(stateRoot: configuration.stateDirectory, namespace: arguments.namespace,
                                  id: arguments.id)
            guard chdir(request.bundle) == 0 else {
                throw ShimError(.invalidArgument, "cannot enter the bundle \(request.bundle): \(String(cString: strerror(errno)))")
            }
            try FileManager.default.createDirectory(atPath: paths.stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            guard symlink(directory + "/vm", paths.vmDirectory) == 0 else {
                throw ShimError(.internal, "cannot link \(paths.vmDirectory): \(String(cString: strerror(errno)))")
            }
        } catch {
            logger.error("spare: refusing a claim: \(error)")
            UnixSocket.write(answer, "\(error)\n")
            return 1
        }
        setNice(0, ofThreadsOf: getpid())
        if let qemu = await sandbox.vm.pid { setNice(0, ofThreadsOf: qemu) }
        logger.info("claimed", metadata: ["namespace": "\(arguments.namespace)", "id": "\(arguments.id)"])
        do {
            try await ShimDaemon.run(arguments, environment: request.environment,
                                     spare: SpareHandoff(sandbox: sandbox, directory: directory, answer: answer))
            return 0
        } catch {
            return 1
        }
    }

    /// Listens on the claim socket until a claim comes (nil: the spare should end — idle
    /// too long, asked to stop, its VM exited, its template went stale or its directory is gone).
    static func waitForClaim(directory: String, sandbox: Sandbox, templateKey: String?, pod: PodConfiguration,
                             idle: Duration, stop: NIOLockedValueBox<Bool>, logger: Logger) async throws
        -> (fd: Int32, request: Claim)?
    {
        let path = directory + "/" + claimSocket
        let listener = try UnixSocket.listen(at: path, backlog: 4)
        defer { close(listener) }
        var socketInode = stat()
        _ = stat(path, &socketInode)
        logger.info("spare VM ready", metadata: ["socket": "\(path)"])
        let deadline = ContinuousClock.now + idle
        let me = geteuid()
        while true {
            var st = stat()
            let ours = stat(path, &st) == 0 && st.st_ino == socketInode.st_ino
            if stop.withLockedValue({ $0 }) || !ours || ContinuousClock.now > deadline {
                logger.info("spare VM ends", metadata: ["reason": "\(!ours ? "its socket is gone" : ContinuousClock.now > deadline ? "idle" : "stopped")"])
                if ours { unlink(path) }
                return nil
            }
            if let exit = await sandbox.vm.exit {
                logger.warning("spare VM exited: \(exit)")
                unlink(path)
                return nil
            }
            let client = try await NIOThreadPool.singleton.runIfActive { () -> Int32 in
                var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 1_000) > 0 else { return -1 }
                let fd = accept(listener, nil, nil)
                if fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
                return fd
            }
            guard client >= 0 else { continue }
            guard UnixSocket.peerUID(client) == me else {
                close(client)
                continue
            }
            // Stale (a rebuilt kernel, image or QEMU): the claimer starts a VM of its own.
            if let templateKey, currentTemplateKey(pod) != templateKey {
                logger.info("spare VM ends: its template is stale")
                unlink(path)
                close(client)
                return nil
            }
            let line = try await NIOThreadPool.singleton.runIfActive {
                UnixSocket.readLine(client, limit: 64 << 10, timeout: .seconds(5))
            }
            guard let line, let request = try? JSONDecoder().decode(Claim.self, from: Data(line.utf8)) else {
                UnixSocket.write(client, "malformed claim\n")
                close(client)
                continue
            }
            // Another shim binary (an upgrade since this spare started): it starts its own VM.
            if request.executable == nil || request.executable != executableIdentity() {
                logger.info("spare VM ends: the claiming shim is another executable (upgraded?)")
                UnixSocket.write(client, "the spare runs another shim executable\n")
                unlink(path)
                close(client)
                return nil
            }
            // One claim only: nobody else may connect from now on.
            unlink(path)
            _ = FileManager.default.createFile(atPath: directory + "/" + claimedMarker, contents: nil)
            return (client, request)
        }
    }

    /// The nice value of a spare until it is claimed.
    static let spareNice: Int32 = 10

    /// Sets the nice value of every thread of `pid` (Linux keeps it per thread; threads made
    /// later inherit their creator's). Passes repeat while one finds a thread that a thread
    /// not yet changed made meanwhile (at most three). libdispatch's worker threads set their
    /// own from their quality of service: those of a shim are not QEMU's and do the shim's
    /// little work.
    static func setNice(_ value: Int32, ofThreadsOf pid: Int32) {
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        var seen: Set<id_t> = []
        for _ in 0..<3 {
            let tasks = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).compactMap { id_t($0) }
            let new = tasks.filter { !seen.contains($0) }
            guard !new.isEmpty else { return }
            for tid in new { _ = setpriority(which, tid, value) }
            seen.formUnion(new)
        }
    }

    /// The key of the template the spare was restored from (nil without warm start).
    static func currentTemplateKey(_ pod: PodConfiguration) -> String? {
        guard let store = pod.templates, let sandbox = try? pod.spareSandbox() else { return nil }
        return try? store.key(for: sandbox)
    }
}
