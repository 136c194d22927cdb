import Instrumentation
import NIOConcurrencyHelpers
import QemuboxAPI
import ServiceContextModule
import SwiftProtobuf
import Tracing

/// The guest's tracer (swift-distributed-tracing): records spans only under a request that
/// carried a W3C `traceparent` in its ttrpc metadata (the host traces it), and sends what it
/// recorded to the host as a span batch on the event stream (`/qemubox/spans`), where the shim
/// replays it into its exporter. Without a `traceparent` every span is a no-op: off and free.
///
/// Bounds: at most ``maxPending`` finished spans wait; beyond that the oldest are dropped
/// (and counted). A batch is sent when the span that joined the host's trace ends, unless the
/// event queue is half full (the host is not draining it): containerd's events come first.
public final class GuestTracer: Tracer, Sendable {
    public typealias Span = GuestSpan

    /// Finished spans kept before a batch is sent; beyond it the oldest are dropped.
    public static let maxPending = 512
    let events: EventQueue
    private let pending = NIOLockedValueBox(Pending())

    struct Pending {
        /// Finished spans with the request (the guest span that joined the host's trace) each belongs to.
        var spans: [(root: UInt64, span: Qemubox_Guest_V1_Span)] = []
        var dropped = 0
    }

    /// A tracer that sends its spans on `events`.
    public init(events: EventQueue) {
        self.events = events
    }

    /// Spans dropped because too many waited.
    public var droppedCount: Int { pending.withLockedValue { $0.dropped } }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant, function: String, file fileID: String, line: UInt
    ) -> GuestSpan {
        let context = context()
        guard let parent = context.guestTrace else { return GuestSpan(tracer: nil, context: context, record: nil) }
        var record = Qemubox_Guest_V1_Span()
        record.name = String(operationName.prefix(GuestSpan.maxText))
        record.spanID = UInt64.random(in: 1...UInt64.max)
        record.parentSpanID = parent.localParent
        record.traceparent = parent.traceparent
        record.kind = GuestSpan.kindNumber(kind)
        record.startUnixNano = instant().nanosecondsSinceEpoch
        let root = parent.localParent == 0 ? record.spanID : parent.root
        var child = context
        child.guestTrace = GuestTraceParent(traceparent: parent.traceparent, localParent: record.spanID, root: root)
        return GuestSpan(tracer: self, context: child, record: record, root: root)
    }

    public func activeSpan(identifiedBy _: ServiceContext) -> GuestSpan? { nil }

    public func forceFlush() { flush() }

    /// Reads `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, sampled) into the context.
    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext,
                                                     using extractor: Extract) where Extract.Carrier == Carrier {
        // Recorded only when the host samples it (trace-flags' lowest bit).
        guard let value = extractor.extract(key: "traceparent", from: carrier), Traceparent.isSampled(value) else { return }
        context.guestTrace = GuestTraceParent(traceparent: value, localParent: 0, root: 0)
    }

    /// The guest calls nothing traced on the host.
    public func inject<Carrier, Inject: Injector>(_: ServiceContext, into _: inout Carrier, using _: Inject)
        where Inject.Carrier == Carrier {}

    func finished(_ record: Qemubox_Guest_V1_Span, root: UInt64) {
        let send = pending.withLockedValue { pending -> [Qemubox_Guest_V1_Span]? in
            pending.spans.append((root, record))
            if pending.spans.count > Self.maxPending {
                pending.spans.removeFirst(pending.spans.count - Self.maxPending)
                pending.dropped += 1
            }
            // The span that joined the host's trace ended: its request is done, and its spans go
            // together (those of requests still running stay: their parents have not ended).
            guard record.parentSpanID == 0 else { return nil }
            let batch = pending.spans.filter { $0.root == root }.map(\.span)
            pending.spans.removeAll { $0.root == root }
            return batch
        }
        if let send { self.send(send) }
    }

    func flush() {
        let spans = pending.withLockedValue { pending -> [Qemubox_Guest_V1_Span] in
            defer { pending.spans = [] }
            return pending.spans.map(\.span)
        }
        if !spans.isEmpty { send(spans) }
    }

    private func send(_ spans: [Qemubox_Guest_V1_Span]) {
        // Telemetry never pushes a task's exit out of the bounded queue: with the host not
        // draining it, batches are dropped once it is half full.
        guard events.count < events.capacity / 2 else {
            pending.withLockedValue { $0.dropped += spans.count }
            return
        }
        var batch = Qemubox_Guest_V1_SpanBatch()
        batch.spans = spans
        var event = Qemubox_Guest_V1_Event()
        event.topic = GuestTracer.topic
        guard let any = try? Google_Protobuf_Any(message: batch) else { return }
        event.event = any
        events.push(event)
    }

    /// The event topic span batches travel under.
    public static let topic = "/qemubox/spans"
}

/// The host's trace a guest span belongs to: the `traceparent` the request carried, and the
/// guest span under which new ones start (0: directly under the host's span).
struct GuestTraceParent: Sendable {
    var traceparent: String
    var localParent: UInt64
    /// The guest span that joined the host's trace (0 before there is one).
    var root: UInt64
}

private enum GuestTraceKey: ServiceContextKey {
    typealias Value = GuestTraceParent
}

extension ServiceContext {
    var guestTrace: GuestTraceParent? {
        get { self[GuestTraceKey.self] }
        set { self[GuestTraceKey.self] = newValue }
    }
}

/// A span the guest records (or a no-op one, outside a traced request).
public final class GuestSpan: Tracing.Span, Sendable {
    static let maxText = 256
    static let maxAttributes = 32
    private let tracer: GuestTracer?
    public let context: ServiceContext
    private let state: NIOLockedValueBox<(record: Qemubox_Guest_V1_Span, attributes: SpanAttributes, ended: Bool)>?

    /// The request it belongs to (``GuestTraceParent/root``).
    private let root: UInt64

    init(tracer: GuestTracer?, context: ServiceContext, record: Qemubox_Guest_V1_Span?, root: UInt64 = 0) {
        self.tracer = tracer
        self.context = context
        self.root = root
        state = record.map { NIOLockedValueBox(($0, SpanAttributes(), false)) }
    }

    public var isRecording: Bool { state?.withLockedValue { !$0.ended } ?? false }

    public var operationName: String {
        get { state?.withLockedValue { $0.record.name } ?? "" }
        set { state?.withLockedValue { $0.record.name = String(newValue.prefix(Self.maxText)) } }
    }

    public var attributes: SpanAttributes {
        get { state?.withLockedValue { $0.attributes } ?? SpanAttributes() }
        set { state?.withLockedValue { $0.attributes = newValue } }
    }

    public func setStatus(_ status: SpanStatus) {
        state?.withLockedValue { state in
            state.record.error = status.code == .error
            state.record.statusMessage = String((status.message ?? "").prefix(Self.maxText))
        }
    }

    public func addEvent(_: SpanEvent) {}

    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes _: SpanAttributes,
                                                    at _: @autoclosure () -> Instant) {
        setStatus(SpanStatus(code: .error, message: "\(error)"))
    }

    public func addLink(_: SpanLink) {}

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        guard let state, let tracer else { return }
        let end = instant().nanosecondsSinceEpoch
        let record = state.withLockedValue { state -> Qemubox_Guest_V1_Span? in
            guard !state.ended else { return nil }
            state.ended = true
            var record = state.record
            record.endUnixNano = end
            state.attributes.forEach { key, value in
                guard record.attributes.count < Self.maxAttributes else { return }
                record.attributes[String(key.prefix(64))] = String(Self.text(value).prefix(Self.maxText))
            }
            return record
        }
        if let record { tracer.finished(record, root: root) }
    }

    static func text(_ value: SpanAttribute) -> String {
        switch value {
        case .string(let text): text
        case .int64(let number): String(number)
        case .int32(let number): String(number)
        case .double(let number): String(number)
        case .bool(let flag): String(flag)
        default: "\(value)"
        }
    }

    static func kindNumber(_ kind: SpanKind) -> UInt32 {
        switch kind {
        case .internal: 0
        case .server: 1
        case .client: 2
        case .producer: 3
        case .consumer: 4
        }
    }
}
