/// The one error type of QemuboxKit's VM layer: a stable ``code`` for `switch`, a
/// human-readable message with context.
public struct QemuboxError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong. Raw values never change.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The machine description is inconsistent or asks for something impossible.
        case invalidDescription = "invalid_description"
        /// The requested accelerator cannot run here (e.g. `kvm` on a `kvm_pvm`-only host).
        case acceleratorUnavailable = "accelerator_unavailable"
        /// QEMU could not be started (exec failure, missing binary or kernel).
        case spawnFailed = "spawn_failed"
        /// QEMU exited or failed before the machine was running.
        case startFailed = "start_failed"
        /// The readiness hook failed or timed out; the machine was stopped.
        case notReady = "not_ready"
        /// The operation is not valid in the machine's current state.
        case invalidState = "invalid_state"
        /// A wait ran out of time.
        case timeout = "timeout"
        /// A host system call failed.
        case system = "system"
        /// A state directory or record could not be read or written.
        case stateDirectory = "state_directory"
    }

    /// Stable error code.
    public var code: Code
    /// Details, with the context in which the error arose.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "qemubox: \(code.rawValue): \(message)" }
}
