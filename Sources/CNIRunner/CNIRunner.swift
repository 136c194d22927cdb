import Foundation
import Logging

/// Executes CNI plugin chains (ADD, CHECK, DEL, GC, VERSION) following the CNI
/// specification 0.3.0 – 1.1.0, and keeps the ADD results in a libcni-compatible cache so
/// that DEL works later without the original configuration.
///
/// Plugins run as child processes on dedicated threads (never blocking Swift's cooperative
/// pool), each bounded by ``timeout``; cancelling the calling task kills the running plugin.
public struct CNIRunner: Sendable {
    /// Directories searched, in order, for plugin executables (also passed as `CNI_PATH`).
    public let binDirectories: [String]
    /// Where ADD results are cached (`<cacheDirectory>/results/...`).
    public let cacheDirectory: String
    /// Time limit of one plugin invocation; a plugin still running then is killed (SIGKILL).
    public let timeout: Duration
    /// When set, every plugin process runs inside this network namespace (via `nsenter`),
    /// so host-side interfaces such as bridges are created there instead of in the caller's.
    public let pluginNetworkNamespace: String?
    /// Where plugin invocations and rollbacks are logged.
    public let logger: Logger

    /// Creates a runner.
    public init(binDirectories: [String], cacheDirectory: String, timeout: Duration = .seconds(60),
                pluginNetworkNamespace: String? = nil, logger: Logger = Logger(label: "qemubox.cni")) {
        self.binDirectories = binDirectories
        self.cacheDirectory = cacheDirectory
        self.timeout = timeout
        self.pluginNetworkNamespace = pluginNetworkNamespace
        self.logger = logger
    }

    /// Runs ADD through the chain: each plugin gets the previous plugin's result as
    /// `prevResult`; the last plugin's result is returned and cached.
    ///
    /// If a plugin fails, DEL is run (best effort, reverse order) for it and every plugin
    /// before it, and the error names the failing plugin with its message.
    public func add(_ list: CNINetworkList, _ runtime: CNIRuntimeConfig) async throws -> CNIResult {
        try runtime.validate()
        var previous: CNIResult?
        for (index, plugin) in list.plugins.enumerated() {
            let stdin = pluginConfig(list, plugin, prevResult: previous?.rawJSON, capabilityArgs: runtime.capabilityArgs)
            do {
                let output = try await invoke(plugin.type, Invocation(
                    command: "ADD", network: list.name, environment: environment(command: "ADD", runtime: runtime), stdin: stdin))
                previous = try CNIResult.parse(output, source: "plugin \(plugin.type) (network \(list.name)) ADD")
            } catch {
                await rollback(list, runtime, through: index, lastResult: previous)
                throw error
            }
        }
        guard let result = previous else {
            throw CNIError(.invalidConfiguration, "network \(list.name) has no plugins")
        }
        do {
            try writeCache(list, runtime, result)
        } catch {
            await rollback(list, runtime, through: list.plugins.count - 1, lastResult: result)
            throw error
        }
        return result
    }

    /// Runs CHECK through the chain with the cached result as `prevResult`. Does nothing for
    /// lists older than 0.4.0 or with `disableCheck`. Throws ``CNIError/Code/cache`` when no
    /// ADD result is cached for the attachment.
    public func check(_ list: CNINetworkList, _ runtime: CNIRuntimeConfig) async throws {
        guard cniVersion(list.cniVersion, isAtLeast: "0.4.0"), !list.disableCheck else { return }
        try runtime.validate()
        let path = cachePath(network: list.name, containerID: runtime.containerID, interfaceName: runtime.interfaceName)
        guard let cached = try readCache(path: path)?.result else {
            throw CNIError(.cache, "network \(list.name): no cached ADD result for container \(runtime.containerID) interface \(runtime.interfaceName); cannot CHECK")
        }
        for plugin in list.plugins {
            let stdin = pluginConfig(list, plugin, prevResult: cached.rawJSON, capabilityArgs: runtime.capabilityArgs)
            _ = try await invoke(plugin.type, Invocation(
                command: "CHECK", network: list.name, environment: environment(command: "CHECK", runtime: runtime), stdin: stdin))
        }
    }

    /// Runs DEL through the chain in reverse order (with the cached result as `prevResult`
    /// for 0.4.0 and later) and removes the cache entry. The namespace path is passed as
    /// given even when the namespace is gone: plugins must tolerate that. Stops at the
    /// first failing plugin and keeps the cache entry, so DEL can be retried.
    public func delete(_ list: CNINetworkList, _ runtime: CNIRuntimeConfig) async throws {
        try runtime.validate()
        var cached: CNIResult?
        if cniVersion(list.cniVersion, isAtLeast: "0.4.0") {
            let path = cachePath(network: list.name, containerID: runtime.containerID, interfaceName: runtime.interfaceName)
            do {
                cached = try readCache(path: path)?.result
            } catch {
                logger.warning("unusable CNI cache entry ignored for DEL", metadata: ["error": "\(error)"])
            }
        }
        for plugin in list.plugins.reversed() {
            let stdin = pluginConfig(list, plugin, prevResult: cached?.rawJSON, capabilityArgs: runtime.capabilityArgs)
            _ = try await invoke(plugin.type, Invocation(
                command: "DEL", network: list.name, environment: environment(command: "DEL", runtime: runtime), stdin: stdin))
        }
        try removeCache(network: list.name, containerID: runtime.containerID, interfaceName: runtime.interfaceName)
    }

    /// Runs DEL for every cached attachment of `containerID` + `interfaceName` (in any
    /// network) from the cache alone: the cached configuration, namespace path, CNI_ARGS and
    /// capability arguments. For cleanup after a crash, when the configuration files may have
    /// changed or gone. No cache entry: nothing to do.
    public func deleteCached(containerID: String, interfaceName: String) async throws {
        try CNIRuntimeConfig(containerID: containerID, networkNamespace: "", interfaceName: interfaceName).validate()
        for path in cachePaths(containerID: containerID, interfaceName: interfaceName) {
            guard let entry = try readCache(path: path),
                  entry.runtime.containerID == containerID, entry.runtime.interfaceName == interfaceName else { continue }
            try await delete(entry.list, entry.runtime)
        }
    }

    /// The cached ADD result of an attachment, or nil when there is none (or it is unusable).
    public func cachedResult(network: String, containerID: String, interfaceName: String) -> CNIResult? {
        guard CNINetworkList.isValidIdentifier(network), CNINetworkList.isValidIdentifier(containerID),
              (try? CNIRuntimeConfig.validateInterfaceName(interfaceName)) != nil else { return nil }
        let path = cachePath(network: network, containerID: containerID, interfaceName: interfaceName)
        return (try? readCache(path: path))??.result
    }

    /// Asks a plugin which specification versions it supports (the VERSION command).
    public func version(pluginType: String) async throws -> [String] {
        let what = "plugin \(pluginType) VERSION"
        let output = try await invoke(pluginType, Invocation(
            command: "VERSION", network: "-", environment: environment(command: "VERSION", runtime: nil),
            stdin: CNIJSON.object(["cniVersion": "1.1.0"]).serialized()))
        let json: CNIJSON
        do {
            json = try CNIJSON.parse(output)
        } catch {
            throw CNIError(.invalidResult, "\(what): \(error.description)")
        }
        guard let versions = json.objectValue?["supportedVersions"]?.arrayValue else {
            throw CNIError(.invalidResult, "\(what): answer has no \"supportedVersions\" array")
        }
        return try versions.map { value in
            guard let text = value.stringValue else {
                throw CNIError(.invalidResult, "\(what): supportedVersions holds a \(value.typeName)")
            }
            return text
        }
    }

    /// Runs GC through the chain with `cni.dev/valid-attachments` listing the attachments
    /// to keep: plugins release everything else they hold for this network. Only for lists
    /// of version 1.1.0 and later without `disableGC`; otherwise does nothing. Every plugin
    /// is called; failures are reported together afterwards.
    public func gc(_ list: CNINetworkList, validAttachments: [(containerID: String, interfaceName: String)]) async throws {
        guard cniVersion(list.cniVersion, isAtLeast: "1.1.0"), !list.disableGC else { return }
        let attachments = CNIJSON.array(validAttachments.map {
            .object(["containerID": .string($0.containerID), "ifname": .string($0.interfaceName)])
        })
        var failures: [CNIError] = []
        for plugin in list.plugins {
            var withAttachments = plugin
            withAttachments.config["cni.dev/valid-attachments"] = attachments
            let stdin = pluginConfig(list, withAttachments, prevResult: nil, capabilityArgs: [:])
            do {
                _ = try await invoke(plugin.type, Invocation(
                    command: "GC", network: list.name, environment: environment(command: "GC", runtime: nil), stdin: stdin))
            } catch let error as CNIError {
                failures.append(error)
            }
        }
        if let first = failures.first {
            throw CNIError(failures.count == 1 ? first.code : .pluginFailed,
                           failures.map(\.message).joined(separator: "; "), pluginErrorCode: first.pluginErrorCode)
        }
    }

    /// Best-effort DEL, in reverse order, for plugins `0...index` after a failed ADD. Runs in
    /// a task of its own so that it also completes when the ADD failed because its task was
    /// cancelled.
    private func rollback(_ list: CNINetworkList, _ runtime: CNIRuntimeConfig, through index: Int, lastResult: CNIResult?) async {
        await Task { await rollbackBody(list, runtime, through: index, lastResult: lastResult) }.value
    }

    private func rollbackBody(_ list: CNINetworkList, _ runtime: CNIRuntimeConfig, through index: Int, lastResult: CNIResult?) async {
        for plugin in list.plugins[0...index].reversed() {
            let stdin = pluginConfig(list, plugin, prevResult: lastResult?.rawJSON, capabilityArgs: runtime.capabilityArgs)
            do {
                _ = try await invoke(plugin.type, Invocation(
                    command: "DEL", network: list.name, environment: environment(command: "DEL", runtime: runtime), stdin: stdin))
            } catch let error as CNIError where error.code == .pluginNotFound {
                continue
            } catch {
                logger.warning("CNI rollback DEL failed", metadata: ["plugin": "\(plugin.type)", "network": "\(list.name)",
                                                                    "error": "\(error)"])
            }
        }
    }
}
