#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOConcurrencyHelpers

/// Bytes a streaming call has buffered for its consumer, and its connection's total:
/// added on the event loop as messages arrive, subtracted as the consumer takes them.
final class TTRPCBufferAccounting: Sendable {
    /// A shared byte count.
    final class Counter: Sendable {
        let bytes = NIOLockedValueBox(0)
    }

    private let stream = Counter()
    private let connectionBox = NIOLockedValueBox<Counter?>(nil)

    /// The connection's counter (set when the call starts).
    var connection: Counter? {
        get { connectionBox.withLockedValue { $0 } }
        set { connectionBox.withLockedValue { $0 = newValue } }
    }

    /// Counts `n` more bytes unless that exceeds a limit; returns which limit it would exceed.
    func add(_ n: Int, streamLimit: Int, connectionLimit: Int) -> String? {
        let connection = self.connection
        let streamTotal = stream.bytes.withLockedValue { $0 }
        if streamTotal + n > streamLimit {
            return "\(streamTotal + n) bytes buffered exceed the stream's limit of \(streamLimit)"
        }
        if let connection {
            let exceeded: String? = connection.bytes.withLockedValue { total in
                guard total + n <= connectionLimit else {
                    return "\(total + n) bytes buffered exceed the connection's limit of \(connectionLimit)"
                }
                total += n
                return nil
            }
            if let exceeded { return exceeded }
        }
        stream.bytes.withLockedValue { $0 += n }
        return nil
    }

    /// The consumer took `n` bytes.
    func remove(_ n: Int) {
        stream.bytes.withLockedValue { $0 -= n }
        connection?.bytes.withLockedValue { $0 -= n }
    }

    /// Whatever is still counted leaves the connection's total (the stream ended unread).
    func release() {
        let left = stream.bytes.withLockedValue { count in
            defer { count = 0 }
            return count
        }
        connection?.bytes.withLockedValue { $0 -= left }
    }

    deinit { release() }
}

/// The messages of a streaming ttrpc call, in order; ends when the server ends the
/// stream and throws its error status if it failed. What is buffered but not yet
/// taken counts against the client's `maxBufferedStreamBytes` and `maxBufferedBytes`.
public struct TTRPCStreamMessages: AsyncSequence, Sendable {
    public typealias Element = Data

    let base: AsyncThrowingStream<Data, any Error>
    let accounting: TTRPCBufferAccounting

    /// Iterates the messages.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<Data, any Error>.AsyncIterator
        let accounting: TTRPCBufferAccounting

        /// The next message, nil at the end.
        public mutating func next() async throws -> Data? {
            let message: Data?
            do {
                message = try await base.next()
            } catch {
                accounting.release()
                throw error
            }
            guard let message else {
                accounting.release()
                return nil
            }
            accounting.remove(message.count)
            return message
        }
    }

    /// An iterator (single consumer).
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), accounting: accounting)
    }
}
