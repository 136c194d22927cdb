#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers
import QemuboxAPI
import SwiftProtobuf

/// The guest's outgoing events, bounded: what no host stream has taken yet
/// waits here; beyond ``capacity`` the oldest events are dropped (and counted).
public final class EventQueue: Sendable {
    private struct State {
        var events: [Qemubox_Guest_V1_Event] = []
        var waiter: CheckedContinuation<Qemubox_Guest_V1_Event?, Never>?
        var dropped = 0
        var closed = false
    }
    private let state = NIOLockedValueBox(State())
    /// Most events kept while nobody drains the queue.
    public let capacity: Int

    /// Creates an empty queue.
    public init(capacity: Int = 1024) { self.capacity = max(1, capacity) }

    /// Events dropped because the queue was full.
    public var droppedCount: Int { state.withLockedValue { $0.dropped } }

    /// Events waiting.
    public var count: Int { state.withLockedValue { $0.events.count } }

    /// Queues a containerd event under its topic, stamped now.
    public func publish(_ message: some SwiftProtobuf.Message, timestamp: Date = Date()) {
        var event = Qemubox_Guest_V1_Event()
        event.topic = ContainerdEvent.topic(for: message) ?? ""
        guard let any = try? ContainerdEvent.pack(message) else { return }
        event.event = any
        event.timestamp = Google_Protobuf_Timestamp(date: timestamp)
        push(event)
    }

    /// Queues an event (hands it straight to a waiting consumer).
    public func push(_ event: Qemubox_Guest_V1_Event) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Qemubox_Guest_V1_Event?, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.events.append(event)
            if state.events.count > capacity {
                state.events.removeFirst(state.events.count - capacity)
                state.dropped += 1
            }
            return nil
        }
        waiter?.resume(returning: event)
    }

    /// Puts an event that could not be delivered back at the front.
    public func requeue(_ event: Qemubox_Guest_V1_Event) {
        state.withLockedValue { state in
            state.events.insert(event, at: 0)
            if state.events.count > capacity { state.events.removeLast() }
        }
    }

    /// The next event, waiting for one; nil once the consumer is cancelled
    /// (``cancelWaiter()``). One consumer at a time.
    public func next() async -> Qemubox_Guest_V1_Event? {
        await withCheckedContinuation { continuation in
            let ready = state.withLockedValue { state -> Qemubox_Guest_V1_Event?? in
                if !state.events.isEmpty { return .some(state.events.removeFirst()) }
                state.waiter?.resume(returning: nil)
                state.waiter = continuation
                return .none
            }
            if case .some(let event) = ready { continuation.resume(returning: event) }
        }
    }

    /// Releases a consumer blocked in ``next()`` (it gets nil).
    public func cancelWaiter() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Qemubox_Guest_V1_Event?, Never>? in
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }
}
