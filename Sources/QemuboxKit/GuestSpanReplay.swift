import Instrumentation
import QemuboxAPI
import ServiceContextModule
import Tracing

/// Puts the spans a guest recorded (`GuestTracer` in the guest agent, sent as a
/// `SpanBatch` event) into this process's tracer, under the host span each request came from.
///
/// The batch is the guest's, so it is bounded and checked before use: at most
/// ``maxSpans`` spans; a span whose `traceparent` is malformed, whose parent is neither 0 nor
/// an earlier span of the batch, or whose times run backwards is dropped; names and
/// attributes were cut by the guest and are cut again here. Span ids are the tracer's own (the
/// guest's are only used to link the batch's spans together); every span is marked
/// `qemubox.guest = true`.
public enum GuestSpanReplay {
    /// The guest event topic span batches travel under.
    public static let topic = "/qemubox/spans"
    /// Most spans taken from one batch.
    public static let maxSpans = 512

    /// Replays `batch` into `InstrumentationSystem.tracer`; returns how many spans it replayed.
    @discardableResult
    public static func replay(_ batch: Qemubox_Guest_V1_SpanBatch) -> Int {
        var contexts: [UInt64: ServiceContext] = [:]
        var replayed = 0
        // A parent is replayed before its children. Start order alone does not give that: the
        // batch lists spans as they ended (children first), and a guest clock that ticks
        // coarsely (a jiffies clocksource under TCG) or steps gives a child its parent's start
        // time or an earlier one. So: passes in start order, each replaying the spans whose
        // parent is there by now, until one makes no progress (what waits then has no parent).
        var waiting = batch.spans.prefix(maxSpans).sorted { $0.startUnixNano < $1.startUnixNano }
        var progress = true
        while progress, !waiting.isEmpty {
            progress = false
            var later: [Qemubox_Guest_V1_Span] = []
            for record in waiting {
                guard record.spanID != 0, record.endUnixNano >= record.startUnixNano, contexts[record.spanID] == nil else {
                    continue
                }
                let parent: ServiceContext
                if record.parentSpanID == 0 {
                    guard let remote = remoteContext(record.traceparent) else { continue }
                    parent = remote
                } else if let local = contexts[record.parentSpanID] {
                    parent = local
                } else {
                    later.append(record)
                    continue
                }
                progress = true
                contexts[record.spanID] = replay(record, under: parent)
                replayed += 1
            }
            waiting = later
        }
        return replayed
    }

    /// Replays one span under `parent`; returns its context (for its children).
    private static func replay(_ record: Qemubox_Guest_V1_Span, under parent: ServiceContext) -> ServiceContext {
        let span = InstrumentationSystem.tracer.startSpan(
            String(record.name.prefix(256)), context: parent, ofKind: kind(record.kind),
            at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: record.startUnixNano),
            function: #function, file: #fileID, line: #line)
        span.attributes["qemubox.guest"] = true
        for (key, value) in record.attributes.prefix(32) {
            span.attributes[String(key.prefix(64))] = String(value.prefix(256))
        }
        if record.error {
            span.setStatus(SpanStatus(code: .error, message: String(record.statusMessage.prefix(256))))
        }
        span.end(at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: record.endUnixNano))
        return span.context
    }

    /// The context of the host span a W3C `traceparent` names.
    static func remoteContext(_ traceparent: String) -> ServiceContext? {
        guard Traceparent.isValid(traceparent) else { return nil }
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(["traceparent": traceparent], into: &context,
                                                 using: DictionaryExtractor())
        return context
    }

    static func kind(_ number: UInt32) -> SpanKind {
        switch number {
        case 1: .server
        case 2: .client
        case 3: .producer
        case 4: .consumer
        default: .internal
        }
    }

    struct DictionaryExtractor: Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }
}
