import QemuboxAPI
@testable import QemuboxKit
import Testing

/// A guest's span batch is the guest's: only well-formed, linked spans are replayed, at most
/// `maxSpans` of them. (This process runs swift-distributed-tracing's no-op tracer: what is
/// checked is what would reach a real one.)
struct GuestSpanReplayTests {
    static let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    static func span(_ id: UInt64, parent: UInt64 = 0, traceparent: String = parent, start: UInt64 = 10,
                     end: UInt64 = 20) -> Qemubox_Guest_V1_Span {
        var span = Qemubox_Guest_V1_Span()
        span.name = "s\(id)"
        span.spanID = id
        span.parentSpanID = parent
        span.traceparent = traceparent
        span.startUnixNano = start
        span.endUnixNano = end
        return span
    }

    @Test func replaysLinkedSpansAndDropsTheRest() {
        var batch = Qemubox_Guest_V1_SpanBatch()
        batch.spans = [
            Self.span(1),                                   // joins the host's trace
            Self.span(2, parent: 1, start: 11, end: 12),    // under 1
            Self.span(3, parent: 99),                       // parent unknown: dropped
            Self.span(4, traceparent: "00-xyz"),            // malformed traceparent: dropped
            Self.span(6, traceparent: String(repeating: "0", count: 55)),
            Self.span(5, start: 30, end: 29),               // ends before it starts: dropped
            Self.span(0),                                   // no id: dropped
            Self.span(1, start: 12),                        // id used twice: dropped
        ]
        #expect(GuestSpanReplay.replay(batch) == 2)
    }

    /// The guest lists spans as they ended (children first), and its clock may tick coarsely
    /// (a jiffies clocksource under TCG) or step: a child with its parent's start time, or an
    /// earlier one, is still replayed under it.
    @Test func childrenBeforeTheirParentsInTimeOrBatch() {
        var batch = Qemubox_Guest_V1_SpanBatch()
        batch.spans = [
            Self.span(3, parent: 2, start: 10, end: 10),    // grandchild, same tick as both parents
            Self.span(2, parent: 1, start: 10, end: 11),    // child, same tick as its parent
            Self.span(1, start: 10, end: 20),               // joins the host's trace
            Self.span(5, parent: 4, start: 5, end: 6),      // starts before its parent (a stepped clock)
            Self.span(4, start: 8, end: 30),
            Self.span(7, parent: 7, start: 1, end: 2),      // its own parent: dropped
        ]
        #expect(GuestSpanReplay.replay(batch) == 5)
    }

    @Test func boundedBatch() {
        var batch = Qemubox_Guest_V1_SpanBatch()
        batch.spans = (1...2000).map { Self.span(UInt64($0)) }
        #expect(GuestSpanReplay.replay(batch) == GuestSpanReplay.maxSpans)
    }
}
