#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension RuntimeSpec {
    /// `linux.seccomp`: a seccomp filter.
    public struct Seccomp: OCIObject {
        /// `defaultAction`: `SCMP_ACT_*` (required).
        public var defaultAction: String?
        /// `defaultErrnoRet`: errno for `SCMP_ACT_ERRNO`/`SCMP_ACT_TRACE` defaults.
        public var defaultErrnoRet: UInt32?
        /// `architectures`: `SCMP_ARCH_*`.
        public var architectures: [String]?
        /// `flags`: `SECCOMP_FILTER_FLAG_*`.
        public var flags: [String]?
        /// `listenerPath`: unix socket for `SCMP_ACT_NOTIFY`.
        public var listenerPath: String?
        /// `listenerMetadata`: opaque data sent to the listener.
        public var listenerMetadata: String?
        /// `syscalls`: rules.
        public var syscalls: [Syscall]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a filter.
        public init(defaultAction: String? = nil, architectures: [String]? = nil, syscalls: [Syscall]? = nil) {
            self.defaultAction = defaultAction
            self.architectures = architectures
            self.syscalls = syscalls
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            defaultAction = try r.decode("defaultAction")
            defaultErrnoRet = try r.decode("defaultErrnoRet")
            architectures = try r.decode("architectures")
            flags = try r.decode("flags")
            listenerPath = try r.decode("listenerPath")
            listenerMetadata = try r.decode("listenerMetadata")
            syscalls = try r.decode("syscalls")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(defaultAction, "defaultAction")
            try w.encode(defaultErrnoRet, "defaultErrnoRet")
            try w.encode(architectures, "architectures")
            try w.encode(flags, "flags")
            try w.encode(listenerPath, "listenerPath")
            try w.encode(listenerMetadata, "listenerMetadata")
            try w.encode(syscalls, "syscalls")
            try w.finish(extensions)
        }

        /// Actions the specification defines.
        public static let knownActions: Set<String> = [
            "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
            "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
        ]

        /// Argument comparison operators the specification defines.
        public static let knownOperators: Set<String> = [
            "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ]
    }

    /// An entry of `seccomp.syscalls`.
    public struct Syscall: OCIObject {
        /// `names` of the system calls (required, non-empty).
        public var names: [String]?
        /// `action`: `SCMP_ACT_*` (required).
        public var action: String?
        /// `errnoRet`: errno returned by `SCMP_ACT_ERRNO`.
        public var errnoRet: UInt32?
        /// `args`: argument conditions, all of which must match.
        public var args: [SyscallArg]?
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a rule.
        public init(names: [String]? = nil, action: String? = nil, errnoRet: UInt32? = nil, args: [SyscallArg]? = nil) {
            self.names = names
            self.action = action
            self.errnoRet = errnoRet
            self.args = args
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            names = try r.decode("names")
            action = try r.decode("action")
            errnoRet = try r.decode("errnoRet")
            args = try r.decode("args")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(names, "names")
            try w.encode(action, "action")
            try w.encode(errnoRet, "errnoRet")
            try w.encode(args, "args")
            try w.finish(extensions)
        }
    }

    /// An entry of `syscalls[].args`.
    public struct SyscallArg: OCIObject {
        /// `index` of the argument (0...5).
        public var index: UInt64
        /// `value` compared against.
        public var value: UInt64
        /// `valueTwo` (mask for `SCMP_CMP_MASKED_EQ`).
        public var valueTwo: UInt64?
        /// `op`: `SCMP_CMP_*`.
        public var op: String
        /// Unmodelled members.
        public var extensions: [String: JSONValue] = [:]

        /// Creates a condition.
        public init(index: UInt64, value: UInt64, valueTwo: UInt64? = nil, op: String) {
            self.index = index
            self.value = value
            self.valueTwo = valueTwo
            self.op = op
        }

        /// Decodes from a decoder.
        public init(from decoder: any Decoder) throws {
            var r = try OCIObjectReader(decoder)
            index = try r.require("index")
            value = try r.require("value")
            valueTwo = try r.decode("valueTwo")
            op = try r.require("op")
            extensions = try r.extensions()
        }

        /// Encodes to an encoder.
        public func encode(to encoder: any Encoder) throws {
            var w = OCIObjectWriter(encoder)
            try w.encode(index, "index")
            try w.encode(value, "value")
            try w.encode(valueTwo, "valueTwo")
            try w.encode(op, "op")
            try w.finish(extensions)
        }
    }
}
