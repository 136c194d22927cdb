/// QEMU's greeting: its version and the protocol capabilities it offers.
public struct QMPGreeting: Sendable, Hashable {
    /// QEMU's major version.
    public var major: Int
    /// QEMU's minor version.
    public var minor: Int
    /// QEMU's micro version.
    public var micro: Int
    /// Distribution package string (e.g. `Debian 1:7.2+dfsg-7`).
    public var package: String
    /// Offered capabilities (e.g. `oob`).
    public var capabilities: [String]

    /// Creates a greeting.
    public init(major: Int, minor: Int, micro: Int, package: String = "", capabilities: [String] = []) {
        self.major = major
        self.minor = minor
        self.micro = micro
        self.package = package
        self.capabilities = capabilities
    }

    init(_ value: JSONValue) throws {
        guard let q = value["version"]?["qemu"],
              let major = q["major"]?.intValue, let minor = q["minor"]?.intValue,
              let micro = q["micro"]?.intValue
        else {
            throw QMPError(.protocolViolation, "greeting without version")
        }
        self.major = Int(major)
        self.minor = Int(minor)
        self.micro = Int(micro)
        self.package = value["version"]?["package"]?.stringValue ?? ""
        self.capabilities = value["capabilities"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// `major.minor.micro`.
    public var versionString: String { "\(major).\(minor).\(micro)" }
}
