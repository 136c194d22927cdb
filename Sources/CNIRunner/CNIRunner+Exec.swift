import Foundation

extension CNIRunner {
    /// One plugin invocation's inputs besides the plugin itself.
    struct Invocation {
        var command: String
        var network: String
        var environment: [String: String]
        var stdin: Data
    }

    /// The executable for a plugin type: the first bin directory holding an executable
    /// regular file of that name.
    func pluginPath(_ type: String, network: String?) throws -> String {
        try CNINetworkList.validatePluginType(type)
        for directory in binDirectories {
            let path = directory + "/" + type
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
               FileManager.default.isExecutableFile(atPath: path) {
                return path
            }
        }
        let context = network.map { " (network \($0))" } ?? ""
        throw CNIError(.pluginNotFound,
                       "plugin \(type)\(context): no executable \"\(type)\" in \(binDirectories.joined(separator: ":"))")
    }

    /// The JSON a plugin reads on stdin: its configuration with `name`, `cniVersion`,
    /// optionally `prevResult`, and `runtimeConfig` holding the capability arguments it declares.
    func pluginConfig(_ list: CNINetworkList, _ plugin: CNIPluginConfig, prevResult: CNIJSON?,
                      capabilityArgs: [String: CNIJSON]) -> Data {
        var config = plugin.config
        config["name"] = .string(list.name)
        config["cniVersion"] = .string(list.cniVersion)
        if let prevResult { config["prevResult"] = prevResult } else { config["prevResult"] = nil }
        let capabilities = plugin.capabilities
        let runtimeConfig = capabilityArgs.filter { capabilities.contains($0.key) }
        if !runtimeConfig.isEmpty { config["runtimeConfig"] = .object(runtimeConfig) }
        return CNIJSON.object(config).serialized()
    }

    /// The environment of an ADD/CHECK/DEL call: this process's environment without stale
    /// `CNI_*` variables, plus the CNI variables.
    func environment(command: String, runtime: CNIRuntimeConfig?) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CNI_") }
        if environment["PATH"] == nil { environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
        environment["CNI_COMMAND"] = command
        environment["CNI_PATH"] = binDirectories.joined(separator: ":")
        if let runtime {
            environment["CNI_CONTAINERID"] = runtime.containerID
            environment["CNI_NETNS"] = runtime.networkNamespace
            environment["CNI_IFNAME"] = runtime.interfaceName
            environment["CNI_ARGS"] = runtime.argsString
        }
        return environment
    }

    /// Runs a plugin and returns its stdout, or throws a ``CNIError`` naming the plugin,
    /// the network and the command, with the plugin's own error message.
    func invoke(_ type: String, _ invocation: Invocation) async throws -> Data {
        let path = try pluginPath(type, network: invocation.network)
        let what = "plugin \(type) (network \(invocation.network)) \(invocation.command)"
        var executable = path
        var arguments: [String] = []
        if let namespace = pluginNetworkNamespace {
            guard FileManager.default.fileExists(atPath: namespace) else {
                throw CNIError(.namespace, "\(what): plugin network namespace \(namespace) does not exist")
            }
            executable = try Tools.path("nsenter")
            arguments = ["--net=\(namespace)", "--", path]
        }
        logger.debug("CNI exec", metadata: ["plugin": "\(type)", "command": "\(invocation.command)",
                                            "network": "\(invocation.network)"])
        let output = try await ChildProcess.run(
            executable: executable, arguments: arguments,
            environment: invocation.environment.map { "\($0.key)=\($0.value)" }.sorted(),
            input: invocation.stdin, timeout: timeout, stdoutLimit: CNIResult.maximumSize)
        switch output.stopReason {
        case .timeout?:
            throw CNIError(.timeout, "\(what) did not finish within \(timeout) and was killed")
        case .cancelled?:
            throw CancellationError()
        case .outputTooLarge?:
            throw CNIError(.invalidResult, "\(what): output larger than \(CNIResult.maximumSize) bytes; plugin killed")
        case nil:
            break
        }
        guard output.exitStatus == 0 else { throw Self.pluginFailure(what, output) }
        return output.stdout
    }

    /// Turns a failed run into an error: the CNI error JSON on stdout (`code`, `msg`,
    /// `details`) when there is one, else the exit status and the tail of stderr.
    static func pluginFailure(_ what: String, _ output: ChildProcess.Output) -> CNIError {
        if let json = try? CNIJSON.parse(output.stdout), let object = json.objectValue,
           let message = object["msg"]?.stringValue {
            var text = "\(what) failed: \(message)"
            if let details = object["details"]?.stringValue, !details.isEmpty { text += ": \(details)" }
            let code = object["code"]?.intValue
            if let code { text += " (CNI error code \(code))" }
            return CNIError(.pluginFailed, text, pluginErrorCode: code)
        }
        var text = "\(what) failed with \(output.statusText)"
        let stderr = output.stderrText
        let stdout = String(decoding: output.stdout.prefix(512), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if !stderr.isEmpty { text += ": \(stderr)" } else if !stdout.isEmpty { text += ": \(stdout)" }
        return CNIError(.pluginFailed, text)
    }
}

/// Helper executables, found on PATH or in the usual sbin directories.
enum Tools {
    static func path(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories where directory.hasPrefix("/") {
            let candidate = directory + "/" + name
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw CNIError(.system, "\(name) not found (PATH and /usr/sbin, /sbin, /usr/bin, /bin)")
    }
}

/// Numeric comparison of dotted CNI versions ("0.4.0" < "1.0.0").
func cniVersion(_ version: String, isAtLeast minimum: String) -> Bool {
    let lhs = version.split(separator: ".").map { Int($0) ?? 0 }
    let rhs = minimum.split(separator: ".").map { Int($0) ?? 0 }
    for index in 0..<max(lhs.count, rhs.count) {
        let left = index < lhs.count ? lhs[index] : 0
        let right = index < rhs.count ? rhs[index] : 0
        if left != right { return left > right }
    }
    return true
}
