import Foundation

/// One plugin of a network configuration list: its `type` and its configuration object,
/// kept as parsed so that every field reaches the plugin unchanged.
public struct CNIPluginConfig: Sendable, Hashable {
    /// The plugin type: the name of the executable looked up in the bin directories.
    public var type: String
    /// The plugin's configuration object (including `type`), as read from the file.
    public var config: [String: CNIJSON]

    /// Creates a plugin configuration from its JSON object; `type` is read from it.
    public init(config: [String: CNIJSON]) throws {
        guard let type = config["type"]?.stringValue else {
            throw CNIError(.invalidConfiguration, "plugin configuration has no string \"type\"")
        }
        try CNINetworkList.validatePluginType(type)
        self.type = type
        self.config = config
    }

    /// The capabilities the plugin declares (`"capabilities": {"portMappings": true}`).
    public var capabilities: Set<String> {
        guard let object = config["capabilities"]?.objectValue else { return [] }
        return Set(object.compactMap { $0.value.boolValue == true ? $0.key : nil })
    }
}

/// A parsed network configuration list (.conflist, or a single .conf/.json wrapped as a
/// list of one plugin).
public struct CNINetworkList: Sendable, Hashable {
    /// The network's name (unique per host; part of the cache key).
    public var name: String
    /// The CNI specification version all plugins are invoked with.
    public var cniVersion: String
    /// When true, ``CNIRunner/check(_:_:)`` does nothing.
    public var disableCheck: Bool
    /// When true, ``CNIRunner/gc(_:validAttachments:)`` does nothing.
    public var disableGC: Bool
    /// The plugins, in ADD order.
    public var plugins: [CNIPluginConfig]

    /// The specification versions CNIRunner speaks.
    public static let supportedVersions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    /// Configuration files larger than this are rejected.
    public static let maximumFileSize = 1 << 20

    /// Creates a list from parts; validates like ``parse(_:source:)``.
    public init(name: String, cniVersion: String, disableCheck: Bool = false, disableGC: Bool = false,
                plugins: [CNIPluginConfig]) throws {
        self.name = name
        self.cniVersion = cniVersion
        self.disableCheck = disableCheck
        self.disableGC = disableGC
        self.plugins = plugins
        try validate(source: "network \(name)")
    }

    /// Parses a `.conflist` (an object with `plugins`) or a single plugin `.conf` (an object
    /// with `type`, wrapped as a list of one). `source` names the input in error messages.
    public static func parse(_ data: Data, source: String) throws -> CNINetworkList {
        guard data.count <= maximumFileSize else {
            throw CNIError(.invalidConfiguration, "\(source): larger than \(maximumFileSize) bytes")
        }
        let json: CNIJSON
        do {
            json = try CNIJSON.parse(data)
        } catch {
            throw CNIError(.invalidConfiguration, "\(source): \(error.description)")
        }
        guard let object = json.objectValue else {
            throw CNIError(.invalidConfiguration, "\(source): top level is a JSON \(json.typeName), not an object")
        }
        func string(_ key: String) throws -> String? {
            guard let value = object[key], value != .null else { return nil }
            guard let text = value.stringValue else {
                throw CNIError(.invalidConfiguration, "\(source): \"\(key)\" is a \(value.typeName), not a string")
            }
            return text
        }
        func flag(_ key: String) throws -> Bool {
            guard let value = object[key], value != .null else { return false }
            guard let bool = value.boolValue ?? value.stringValue.flatMap({ Bool($0.lowercased()) }) else {
                throw CNIError(.invalidConfiguration, "\(source): \"\(key)\" is not a boolean")
            }
            return bool
        }
        guard let name = try string("name"), !name.isEmpty else {
            throw CNIError(.invalidConfiguration, "\(source): missing network \"name\"")
        }
        guard let version = try string("cniVersion"), !version.isEmpty else {
            throw CNIError(.invalidConfiguration, "\(source): network \(name) has no \"cniVersion\"")
        }
        var plugins: [CNIPluginConfig] = []
        if let pluginsValue = object["plugins"] {
            guard let array = pluginsValue.arrayValue else {
                throw CNIError(.invalidConfiguration, "\(source): \"plugins\" is a \(pluginsValue.typeName), not an array")
            }
            for (index, element) in array.enumerated() {
                guard let pluginObject = element.objectValue else {
                    throw CNIError(.invalidConfiguration, "\(source): plugins[\(index)] is a \(element.typeName), not an object")
                }
                do {
                    plugins.append(try CNIPluginConfig(config: pluginObject))
                } catch let error as CNIError {
                    throw CNIError(.invalidConfiguration, "\(source): plugins[\(index)]: \(error.message)")
                }
            }
        } else if object["type"] != nil {
            do {
                plugins.append(try CNIPluginConfig(config: object))
            } catch let error as CNIError {
                throw CNIError(.invalidConfiguration, "\(source): \(error.message)")
            }
        }
        let list = CNINetworkList(unchecked: name, version, try flag("disableCheck"), try flag("disableGC"), plugins)
        try list.validate(source: source)
        return list
    }

    /// Loads a network configuration from `directory` like libcni: the files ending in
    /// `.conflist`, `.conf` or `.json`, sorted by file name; the first one that parses, or,
    /// with `name`, the first whose network name matches. Files that do not parse are skipped
    /// when looking for a name, and reported when nothing matched.
    public static func load(directory: String, name: String? = nil) throws -> CNINetworkList {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw CNIError(.invalidConfiguration, "cannot read configuration directory \(directory): \(error.localizedDescription)")
        }
        let files = entries.filter { $0.hasSuffix(".conflist") || $0.hasSuffix(".conf") || $0.hasSuffix(".json") }.sorted()
        var problems: [String] = []
        for file in files {
            let path = directory + "/" + file
            guard let data = readBounded(path) else {
                problems.append("\(path): unreadable or larger than \(maximumFileSize) bytes")
                continue
            }
            do {
                let list = try parse(data, source: path)
                if name == nil || list.name == name { return list }
            } catch let error as CNIError {
                if name == nil { throw error }
                problems.append(error.message)
            }
        }
        let what = name.map { "no network named \($0)" } ?? "no network configuration"
        let detail = problems.isEmpty ? "" : " (skipped: \(problems.joined(separator: "; ")))"
        throw CNIError(.invalidConfiguration, "\(what) in \(directory)\(detail)")
    }

    /// The list as a `.conflist` JSON document (what the result cache stores).
    public func serialized() -> Data {
        var object: [String: CNIJSON] = [
            "name": .string(name),
            "cniVersion": .string(cniVersion),
            "plugins": .array(plugins.map { .object($0.config) }),
        ]
        if disableCheck { object["disableCheck"] = true }
        if disableGC { object["disableGC"] = true }
        return CNIJSON.object(object).serialized()
    }

    private init(unchecked name: String, _ version: String, _ disableCheck: Bool, _ disableGC: Bool,
                 _ plugins: [CNIPluginConfig]) {
        self.name = name
        self.cniVersion = version
        self.disableCheck = disableCheck
        self.disableGC = disableGC
        self.plugins = plugins
    }

    func validate(source: String) throws {
        guard Self.isValidIdentifier(name) else {
            throw CNIError(.invalidConfiguration,
                           "\(source): invalid network name \"\(name.prefix(80))\" (letters, digits, '_', '.', '-'; starting with a letter or digit)")
        }
        guard Self.supportedVersions.contains(cniVersion) else {
            throw CNIError(.invalidConfiguration,
                           "\(source): network \(name) has unsupported cniVersion \"\(cniVersion.prefix(20))\" (supported: \(Self.supportedVersions.joined(separator: ", ")))")
        }
        guard !plugins.isEmpty else {
            throw CNIError(.invalidConfiguration, "\(source): network \(name) has no plugins")
        }
        for plugin in plugins { try Self.validatePluginType(plugin.type) }
    }

    static func validatePluginType(_ type: String) throws {
        guard !type.isEmpty else { throw CNIError(.invalidConfiguration, "empty plugin type") }
        guard !type.contains("/"), !type.contains(".."), !type.contains("\0"), type.utf8.count <= 255 else {
            throw CNIError(.invalidConfiguration, "invalid plugin type \"\(type.prefix(80))\" (no '/', '..' or NUL)")
        }
    }

    /// libcni's rule for network names and container IDs: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
    static func isValidIdentifier(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first.isASCIIAlphanumeric, text.utf8.count <= 1024 else { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCIIAlphanumeric || $0 == "_" || $0 == "." || $0 == "-" }
    }

    static func readBounded(_ path: String) -> Data? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        do {
            let data = try handle.read(upToCount: maximumFileSize + 1) ?? Data()
            return data.count <= maximumFileSize ? data : nil
        } catch {
            return nil
        }
    }
}

extension Unicode.Scalar {
    var isASCIIAlphanumeric: Bool {
        (value >= 0x30 && value <= 0x39) || (value >= 0x41 && value <= 0x5A) || (value >= 0x61 && value <= 0x7A)
    }
}
