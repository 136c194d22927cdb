import TTRPCCodec

/// The one error type of QemuboxKit: a stable ``code`` for `switch`, a
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
        /// The guest agent could not be reached, refused the handshake or went away.
        case agentUnavailable = "agent_unavailable"
        /// The guest agent answered a call with an error.
        case agentError = "agent_error"
        /// A bundle (config.json + rootfs) is missing or unusable.
        case invalidBundle = "invalid_bundle"
        /// The container's root filesystem could not be prepared (EROFS image, writable disk).
        case rootfs = "rootfs"
        /// The guest kernel or system image was not found.
        case guestAssetsMissing = "guest_assets_missing"
        /// The configuration file (`/etc/qemubox/config.toml`) is unreadable or invalid.
        case invalidConfiguration = "invalid_configuration"
        /// The container's network could not be set up (namespace, CNI, TAP wiring, guest configuration).
        case network = "network"
        /// A host resource ran out (e.g. every jail id is in use).
        case resourceExhausted = "resource_exhausted"
        /// A request's fields are wrong (a missing exec id, an unreadable config.json).
        case invalidArgument = "invalid_argument"
        /// No such container or process.
        case notFound = "not_found"
        /// The container or process exists already.
        case alreadyExists = "already_exists"
        /// The call is not valid in the container's or process's state (e.g. delete while running).
        case failedPrecondition = "failed_precondition"
        /// qemubox does not do this (e.g. checkpoints).
        case unimplemented = "unimplemented"
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

extension QemuboxError: TTRPCStatusConvertible {
    /// The status containerd's `errdefs` expects for each code, so that `errdefs.IsNotFound`
    /// and friends work on the caller's side of a ttrpc boundary.
    public var ttrpcStatus: TTRPCError {
        let status: TTRPCError.Code = switch code {
        case .invalidArgument, .invalidBundle, .invalidDescription: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition, .invalidState, .guestAssetsMissing, .invalidConfiguration, .acceleratorUnavailable:
            .failedPrecondition
        case .unimplemented: .unimplemented
        case .agentUnavailable: .unavailable
        case .timeout: .deadlineExceeded
        case .resourceExhausted: .resourceExhausted
        case .spawnFailed, .startFailed, .notReady, .system, .stateDirectory, .agentError, .rootfs, .network:
            .internal
        }
        return TTRPCError(status, message)
    }
}

/// ProcessSpawn's `ProcessTermination`, `Subprocess`, `JailSpec` and `SeccompProgram` are part of
/// this module's API (exit reasons, the jail).
@_exported import ProcessSpawn
