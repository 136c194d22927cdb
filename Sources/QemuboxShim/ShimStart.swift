#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import OCISpec
import QemuboxAPI
import QemuboxKit
import SwiftProtobuf

/// `start`: launch the daemon, wait until it listens, print its address.
enum ShimStart {
    static func run(_ arguments: ShimArguments, environment: [String: String]) throws {
        let configuration = try QemuboxShim.configuration(environment)
        var daemon = arguments
        let bundle = FileManager.default.currentDirectoryPath
        // Read once: it says both which pod the container joins and whether a spare may take it.
        let spec = try? RuntimeSpec.load(bundle: bundle)
        if let pod = spec.flatMap({ PodSpec.podID(annotations: $0.annotations ?? [:]) }) {
            // A CRI pod's container joins its sandbox's shim (and VM) when that one serves.
            let group = try ShimPaths(stateRoot: configuration.stateDirectory, namespace: arguments.namespace, id: pod)
            if QemuboxShim.servingDaemon(group) != nil {
                try reply("unix://" + group.socket)
                return
            }
        }
        let paths = try ShimPaths(stateRoot: configuration.stateDirectory, namespace: arguments.namespace,
                                  id: arguments.id)
        daemon.socket = paths.socket
        let address = "unix://" + paths.socket
        do {
            try FileManager.default.createDirectory(atPath: (paths.socket as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o711])
            try FileManager.default.createDirectory(atPath: paths.stateDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw ShimError(.internal, "cannot create the state directory: \(error)")
        }
        if QemuboxShim.servingDaemon(paths) != nil {
            // A shim for this task is already serving (containerd retried start).
            try reply(address)
            return
        }
        unlink(paths.socket)
        if configuration.warmSpares > 0, let spec, ShimSpare.mayClaim(spec, policy: configuration.annotations),
           ShimSpare.claim(daemon, environment: environment, bundle: bundle, configuration: configuration) {
            // A spare VM's process serves this task now.
            try reply(address)
            return
        }
        let ready = try Spawn.pipe()
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let environmentList = environment.map { "\($0.key)=\($0.value)" }
        let pid: pid_t
        do {
            pid = try Spawn.run(Spawn.executablePath(), daemon.daemonArguments(), environment: environmentList,
                                descriptors: [(null, 0), (null, 1), (null, 2), (ready.write, 3)], newSession: true)
        } catch {
            close(ready.read)
            close(ready.write)
            throw error
        }
        close(ready.write)
        // The daemon writes "ok\n" once it listens, or an error line and exits.
        var poller = pollfd(fd: ready.read, events: Int16(POLLIN), revents: 0)
        var answer = [UInt8](repeating: 0, count: 4096)
        var got = 0
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if poll(&poller, 1, 100) > 0 {
                let n = answer.withUnsafeMutableBytes { raw -> Int in
                    guard let base = raw.baseAddress else { return 0 }
                    return read(ready.read, base + got, raw.count - got)
                }
                if n <= 0 { break }
                got += n
                if answer[0..<got].contains(UInt8(ascii: "\n")) { break }
            }
        }
        close(ready.read)
        let text = String(decoding: answer[0..<got], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text == "ok" else {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            throw ShimError(.internal, "the shim daemon did not start: \(text.isEmpty ? "no answer" : text)")
        }
        // The daemon is in its own session; containerd reaps nothing of ours.
        try reply(address)
    }

    /// Writes `address` into the bundle (containerd re-reads it after a restart) and prints it.
    static func reply(_ address: String) throws {
        do {
            try address.write(toFile: "address", atomically: true, encoding: .utf8)
        } catch {
            throw ShimError(.internal, "cannot write the address file in \(FileManager.default.currentDirectoryPath): \(error)")
        }
        print(address)
    }
}
