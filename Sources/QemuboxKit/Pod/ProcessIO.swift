/// The host side of one process's stdio, which a ``Pod`` joins to the process's
/// streams in the guest. The shim's implementation serves containerd's FIFOs and
/// `binary://` loggers; ``DescriptorIO`` serves plain file descriptors.
public protocol ProcessIO: Sendable {
    /// The process gets a stdin stream.
    var wantsStdin: Bool { get }
    /// The process's stdout is relayed.
    var wantsStdout: Bool { get }
    /// The process's stderr is relayed (never with a terminal).
    var wantsStderr: Bool { get }
    /// Starts relaying between the host ends and `stdio`, the process's streams.
    func attach(_ stdio: ProcessStdio)
    /// Ends the process's stdin once what the host end delivered so far is relayed (containerd's `CloseIO`).
    func closeStdin()
    /// Waits (at most `timeout`) until stdout and stderr have delivered their last byte; false on timeout.
    func waitOutput(timeout: Duration) async -> Bool
    /// Stops every relay and releases the host ends.
    func close() async
}

/// The stdio paths or URIs a process was created with, as the caller named them
/// (reported back by ``Pod/state(_:)``).
public struct ProcessIOPaths: Sendable, Hashable {
    /// stdin (empty: none).
    public var stdin: String
    /// stdout.
    public var stdout: String
    /// stderr.
    public var stderr: String
    /// A terminal joins stdout and stderr.
    public var terminal: Bool

    /// Creates the paths.
    public init(stdin: String = "", stdout: String = "", stderr: String = "", terminal: Bool = false) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.terminal = terminal
    }
}
