import NIOConcurrencyHelpers
import VsockTransport

/// ``ProcessIO`` over host file descriptors the caller owns (a terminal, files,
/// pipes): stdin is copied until end of file, stdout and stderr until the guest
/// closes them. Counts the bytes and notes when the first one arrived.
public final class DescriptorIO: ProcessIO {
    private let stdinFD: Int32?
    private let stdoutFD: Int32?
    private let stderrFD: Int32?
    private let state = NIOLockedValueBox(State())

    private struct State {
        var output: Task<(UInt64, UInt64), any Error>?
        var input: Task<Void, Never>?
        var firstOutput: ContinuousClock.Instant?
    }

    /// Relays `stdin` (nil: none) into the process and its output into `stdout`/`stderr`.
    public init(stdin: Int32?, stdout: Int32?, stderr: Int32?) {
        stdinFD = stdin
        stdoutFD = stdout
        stderrFD = stderr
    }

    public var wantsStdin: Bool { stdinFD != nil }
    public var wantsStdout: Bool { stdoutFD != nil }
    public var wantsStderr: Bool { stderrFD != nil }

    /// When the first stdout or stderr byte arrived (nil: none yet).
    public var firstOutput: ContinuousClock.Instant? { state.withLockedValue { $0.firstOutput } }

    public func attach(_ stdio: ProcessStdio) {
        let state = self.state
        let note: @Sendable () -> Void = { state.withLockedValue { $0.firstOutput = $0.firstOutput ?? .now } }
        let input: Task<Void, Never>? = if let fd = stdinFD, let stream = stdio.stdin {
            Task { _ = try? await StdioRelay.copy(from: fd, to: stream) }
        } else {
            nil
        }
        let (outFD, errFD) = (stdoutFD, stderrFD)
        let output = Task {
            async let out = Self.copy(stdio.stdout, outFD, note)
            async let err = Self.copy(stdio.stderr, errFD, note)
            return (try await out, try await err)
        }
        state.withLockedValue {
            $0.output = output
            $0.input = input
        }
    }

    private static func copy(_ stream: YamuxStream?, _ fd: Int32?, _ note: @escaping @Sendable () -> Void)
        async throws -> UInt64
    {
        guard let stream, let fd else { return 0 }
        return try await StdioRelay.copy(from: stream, to: fd, onFirstChunk: note)
    }

    /// The bytes relayed from stdout and stderr, once both ended.
    public func outputBytes() async throws -> (stdout: UInt64, stderr: UInt64) {
        guard let output = state.withLockedValue({ $0.output }) else { return (0, 0) }
        let (out, err) = try await output.value
        return (out, err)
    }

    /// Stdin ends at the descriptor's end of file; there is nothing to close early.
    public func closeStdin() {}

    public func waitOutput(timeout: Duration) async -> Bool {
        guard let output = state.withLockedValue({ $0.output }) else { return true }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { _ = try? await output.value; return true }
            group.addTask { try? await Task.sleep(for: timeout); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    public func close() async {
        let (output, input) = state.withLockedValue { ($0.output, $0.input) }
        output?.cancel()
        input?.cancel()
    }
}
