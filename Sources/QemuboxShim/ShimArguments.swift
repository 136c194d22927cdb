/// The shim's command line as containerd passes it, Go `flag` style:
/// `-namespace N -address A -publish-binary B -id ID [-bundle DIR] [-debug] start|delete`.
/// Flags take `-name value`, `-name=value` or two dashes; they end at the first
/// non-flag word, the action. No action means "serve" (the daemon `start` launches).
public struct ShimArguments: Sendable, Hashable {
    /// What to do.
    public enum Action: String, Sendable, Hashable {
        /// Run the shim daemon (serving the Task API on `socket`).
        case serve
        /// Launch the daemon, print its address, exit.
        case start
        /// Clean up after a dead shim and print the DeleteResponse.
        case delete
        /// Print the version.
        case version
    }

    /// The action.
    public var action: Action = .serve
    /// containerd namespace.
    public var namespace: String = ""
    /// containerd's gRPC address.
    public var address: String = ""
    /// The binary containerd wants events published with (unused: events go over ttrpc).
    public var publishBinary: String = ""
    /// The task (container) id.
    public var id: String = ""
    /// The bundle directory (`delete` gets it; otherwise the working directory).
    public var bundle: String = ""
    /// The socket the daemon serves on (set by `start` for the daemon).
    public var socket: String = ""
    /// Debug logging.
    public var debug: Bool = false

    /// Creates empty arguments.
    public init() {}

    static let valueFlags: Set<String> = ["namespace", "address", "publish-binary", "id", "bundle", "socket"]
    static let boolFlags: Set<String> = ["debug", "v", "version"]

    /// Parses the arguments after the program name.
    public static func parse(_ arguments: [String]) throws -> ShimArguments {
        var result = ShimArguments()
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            guard word.hasPrefix("-"), word != "-" else { break }
            if word == "--" {
                index += 1
                break
            }
            var name = String(word.drop(while: { $0 == "-" }))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if valueFlags.contains(name) {
                if value == nil {
                    index += 1
                    guard index < arguments.count else {
                        throw ShimError(.invalidArgument, "flag needs an argument: -\(name)")
                    }
                    value = arguments[index]
                }
                let v = value ?? ""
                switch name {
                case "namespace": result.namespace = v
                case "address": result.address = v
                case "publish-binary": result.publishBinary = v
                case "id": result.id = v
                case "bundle": result.bundle = v
                default: result.socket = v
                }
            } else if boolFlags.contains(name) {
                let on: Bool
                switch value?.lowercased() {
                case nil, "1", "t", "true": on = true
                case "0", "f", "false": on = false
                default: throw ShimError(.invalidArgument, "invalid boolean value \(value ?? "") for -\(name)")
                }
                if name == "debug" {
                    result.debug = on
                } else if on {
                    result.action = .version
                }
            } else {
                throw ShimError(.invalidArgument, "flag provided but not defined: -\(name)")
            }
            index += 1
        }
        let rest = arguments[index...]
        if result.action == .version { return result }
        if let action = rest.first {
            switch action {
            case "start": result.action = .start
            case "delete": result.action = .delete
            default: throw ShimError(.invalidArgument, "unknown action \(action.debugDescription) (start or delete)")
            }
            guard rest.count == 1 else {
                throw ShimError(.invalidArgument, "unexpected arguments after \(action): \(rest.dropFirst().joined(separator: " "))")
            }
        }
        if result.action != .version {
            guard !result.namespace.isEmpty else { throw ShimError(.invalidArgument, "-namespace is required") }
            guard !result.id.isEmpty else { throw ShimError(.invalidArgument, "-id is required") }
            guard !result.id.contains("/"), result.id != ".", result.id != ".." ,
                  !result.namespace.contains("/"), result.namespace != ".", result.namespace != ".." else {
                throw ShimError(.invalidArgument, "namespace and id must be plain names")
            }
        }
        if result.action == .serve && result.socket.isEmpty {
            throw ShimError(.invalidArgument, "the daemon needs -socket (containerd runs `start`, which launches it)")
        }
        return result
    }

    /// The daemon's arguments (what `start` launches).
    func daemonArguments() -> [String] {
        var arguments = ["-namespace", namespace, "-address", address, "-publish-binary", publishBinary, "-id", id,
                         "-socket", socket]
        if debug { arguments.append("-debug") }
        return arguments
    }
}
