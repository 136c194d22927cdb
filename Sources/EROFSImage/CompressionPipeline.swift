import Foundation

/// Compresses files on worker threads while the caller keeps scanning, and hands
/// the results back strictly in submission order, so the image is byte-for-byte
/// the same as a sequential build. Memory is bounded by `maxPendingBytes` of input.
final class CompressionPipeline {
    /// A file being compressed into memory on a worker.
    final class Job: @unchecked Sendable {
        let source: any FileSource
        let compression: EROFSCompression
        let maxExtentBytes: Int
        private(set) var outcome: Result<(CompressionOutcome, [UInt8]), any Error>?
        private let done = DispatchSemaphore(value: 0)

        init(source: any FileSource, compression: EROFSCompression, maxExtentBytes: Int) {
            self.source = source
            self.compression = compression
            self.maxExtentBytes = maxExtentBytes
        }

        func run() {
            let compressor = Compressor(compression: compression, maxExtentBytes: maxExtentBytes, sizeHint: source.size)
            var blocks: [UInt8] = []
            blocks.reserveCapacity(Int(min(source.size, 1 << 26)))
            do {
                let result = try compressor.compress(source) { blocks.append(contentsOf: $0) }
                outcome = .success((result, blocks))
            } catch {
                outcome = .failure(error)
            }
            done.signal()
        }

        func wait() throws -> (CompressionOutcome, [UInt8]) {
            done.wait()
            done.signal()
            switch outcome {
            case .success(let value)?: return value
            case .failure(let error)?: throw error
            case nil: throw EROFSError(.invalidState, "compression job finished without a result")
            }
        }
    }

    /// A fixed set of threads draining a FIFO of jobs.
    private final class Workers: @unchecked Sendable {
        private let condition = NSCondition()
        private var queue: [Job] = []
        private var head = 0
        private var stopping = false

        init(count: Int) {
            for _ in 0..<count {
                let thread = Thread { [self] in self.loop() }
                thread.stackSize = 1 << 20
                thread.start()
            }
        }

        func submit(_ job: Job) {
            condition.lock()
            queue.append(job)
            condition.signal()
            condition.unlock()
        }

        func stop() {
            condition.lock()
            stopping = true
            condition.broadcast()
            condition.unlock()
        }

        private func loop() {
            while true {
                condition.lock()
                while head == queue.count && !stopping { condition.wait() }
                if head == queue.count {
                    condition.unlock()
                    return
                }
                let job = queue[head]
                head += 1
                if head > 1024 {
                    queue.removeFirst(head)
                    head = 0
                }
                condition.unlock()
                job.run()
            }
        }
    }

    private let workers: Workers
    let maxPendingBytes: UInt64

    init(threads: Int, maxPendingBytes: UInt64) {
        workers = Workers(count: max(1, threads))
        self.maxPendingBytes = maxPendingBytes
    }

    deinit { workers.stop() }

    func submit(_ job: Job) { workers.submit(job) }
}
