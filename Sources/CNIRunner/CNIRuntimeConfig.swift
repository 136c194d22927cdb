/// What a runtime tells the plugins about one attachment: the container, its network
/// namespace and the interface to create, plus `CNI_ARGS` and capability arguments.
public struct CNIRuntimeConfig: Sendable {
    /// The container ID (`CNI_CONTAINERID`): letters, digits, `_`, `.`, `-`.
    public var containerID: String
    /// The path of the container's network namespace (`CNI_NETNS`), e.g. `/run/netns/NAME`.
    public var networkNamespace: String
    /// The interface to create inside the namespace (`CNI_IFNAME`).
    public var interfaceName: String
    /// `CNI_ARGS`, in order: joined as `K1=V1;K2=V2`.
    public var args: [(String, String)]
    /// Capability arguments (`runtimeConfig`): each key is passed only to the plugins whose
    /// configuration declares that capability (e.g. `portMappings`, `ips`, `mac`).
    public var capabilityArgs: [String: CNIJSON]

    /// Creates a runtime configuration.
    public init(containerID: String, networkNamespace: String, interfaceName: String = "eth0",
                args: [(String, String)] = [], capabilityArgs: [String: CNIJSON] = [:]) {
        self.containerID = containerID
        self.networkNamespace = networkNamespace
        self.interfaceName = interfaceName
        self.args = args
        self.capabilityArgs = capabilityArgs
    }

    /// `args` in `CNI_ARGS` form.
    var argsString: String { args.map { "\($0.0)=\($0.1)" }.joined(separator: ";") }

    /// Checks what ends up in environment variables and cache file names.
    func validate() throws {
        guard CNINetworkList.isValidIdentifier(containerID) else {
            throw CNIError(.invalidConfiguration,
                           "invalid container ID \"\(containerID.prefix(80))\" (letters, digits, '_', '.', '-'; starting with a letter or digit)")
        }
        try Self.validateInterfaceName(interfaceName)
        for (key, value) in args {
            guard !key.isEmpty, !key.contains("="), !key.contains(";"), !value.contains(";"),
                  !key.contains("\0"), !value.contains("\0") else {
                throw CNIError(.invalidConfiguration, "invalid CNI_ARGS entry \"\(key.prefix(40))=\(value.prefix(40))\"")
            }
        }
        guard !networkNamespace.contains("\0") else {
            throw CNIError(.invalidConfiguration, "network namespace path contains NUL")
        }
    }

    /// The kernel's rule for interface names (and libcni's): 1–15 bytes, no '/', ':' or
    /// whitespace, not "." or "..".
    static func validateInterfaceName(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 15, name != ".", name != "..",
              !bytes.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 == 0x7F })
        else {
            throw CNIError(.invalidConfiguration, "invalid interface name \"\(name.prefix(40))\"")
        }
    }
}
