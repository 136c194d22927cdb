#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

/// containerd's event envelope conventions.
///
/// containerd packs events in `google.protobuf.Any` with its own `typeurl`
/// convention: the type URL is the bare message name (`containerd.events.TaskExit`),
/// without the `type.googleapis.com/` prefix that `Google_Protobuf_Any(message:)`
/// would add. containerd cannot decode an event packed the other way.
public enum ContainerdEvent {
    /// Packs a message the way containerd's `typeurl.MarshalAny` does.
    public static func pack(_ message: some SwiftProtobuf.Message) throws -> Google_Protobuf_Any {
        var any = Google_Protobuf_Any()
        any.typeURL = type(of: message).protoMessageName
        any.value = try message.serializedData()
        return any
    }

    /// Unpacks an `Any` produced by containerd (bare name) or by protobuf
    /// libraries (prefixed URL). Returns nil when the type does not match.
    public static func unpack<M: SwiftProtobuf.Message>(_ any: Google_Protobuf_Any, as type: M.Type) throws -> M? {
        let name = any.typeURL.split(separator: "/").last.map(String.init) ?? any.typeURL
        guard name == M.protoMessageName else { return nil }
        return try M(serializedBytes: any.value)
    }

    /// The topic containerd uses for an event type (`/tasks/exit` for `TaskExit`, …),
    /// or nil for types that are not task events.
    public static func topic(for message: some SwiftProtobuf.Message) -> String? {
        switch message {
        case is Containerd_Events_TaskCreate: "/tasks/create"
        case is Containerd_Events_TaskStart: "/tasks/start"
        case is Containerd_Events_TaskDelete: "/tasks/delete"
        case is Containerd_Events_TaskExit: "/tasks/exit"
        case is Containerd_Events_TaskOOM: "/tasks/oom"
        case is Containerd_Events_TaskExecAdded: "/tasks/exec-added"
        case is Containerd_Events_TaskExecStarted: "/tasks/exec-started"
        case is Containerd_Events_TaskPaused: "/tasks/paused"
        case is Containerd_Events_TaskResumed: "/tasks/resumed"
        case is Containerd_Events_TaskCheckpointed: "/tasks/checkpointed"
        default: nil
        }
    }

    /// A `ForwardRequest` for the events service containerd serves to shims
    /// (`TTRPC_ADDRESS`), stamped now.
    public static func forwardRequest(namespace: String, event: some SwiftProtobuf.Message,
                                      timestamp: Date = Date()) throws -> Containerd_Services_Events_Ttrpc_V1_ForwardRequest {
        var envelope = Containerd_Services_Events_Ttrpc_V1_Envelope()
        envelope.timestamp = Google_Protobuf_Timestamp(date: timestamp)
        envelope.namespace = namespace
        envelope.topic = topic(for: event) ?? ""
        envelope.event = try pack(event)
        var request = Containerd_Services_Events_Ttrpc_V1_ForwardRequest()
        request.envelope = envelope
        return request
    }
}
