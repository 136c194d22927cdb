import CEROFSLZ4
import Glibc

/// One extent of a compressed file: `length` bytes from `start`, in the one-block
/// pcluster `blkaddr` (relative to the file's first block until committed).
struct Extent {
    var start: UInt64
    var length: Int
    var blkaddr: UInt32
    var raw: Bool
}

/// What compressing one file produced (its blocks went to the sink).
struct CompressionOutcome {
    var extents: [Extent]
    /// The last extent's bytes when it is a short plain one (may go inline instead).
    var finalRawTail: [UInt8]?

    /// Whether the compressed form is smaller than plain storage with an inline tail.
    func pays(size: UInt64, inlineBudget: Int) -> Bool {
        let bs = EROFSFormat.blockSize
        let fullBlocks = Int(size / UInt64(bs))
        let tailLength = Int(size % UInt64(bs))
        let plainCost = (fullBlocks + (tailLength > 0 && tailLength > inlineBudget ? 1 : 0)) * bs
            + (tailLength <= inlineBudget ? tailLength : 0)
        let lclusters = Int((size + UInt64(bs) - 1) / UInt64(bs))
        return extents.count * bs + 8 + CompactIndex.maxBytes(count: lclusters) < plainCost
    }
}

/// lz4/lz4hc into one-block pclusters with liblz4's destination-size API: each
/// pcluster holds as much input as fits in 4 KiB compressed (right-aligned, the
/// `0padding` form the kernel expects), or exactly 4 KiB of input stored plainly
/// when that does not shrink it. One instance per thread.
final class Compressor {
    let compression: EROFSCompression
    let maxExtentBytes: Int
    private let bs = EROFSFormat.blockSize
    private let window: UnsafeMutableRawBufferPointer
    private let block: UnsafeMutableRawBufferPointer
    private let hcState: UnsafeMutableRawPointer?
    private let scratch: UnsafeMutablePointer<CChar>

    init(compression: EROFSCompression, maxExtentBytes: Int, sizeHint: UInt64) {
        self.compression = compression
        self.maxExtentBytes = maxExtentBytes
        let windowBytes = Int(EROFSFormat.roundUp(min(UInt64(2 * maxExtentBytes), sizeHint), 4096)) + EROFSFormat.blockSize
        window = UnsafeMutableRawBufferPointer.allocate(byteCount: windowBytes, alignment: 4096)
        block = UnsafeMutableRawBufferPointer.allocate(byteCount: EROFSFormat.blockSize, alignment: 16)
        scratch = UnsafeMutablePointer<CChar>.allocate(capacity: EROFSFormat.blockSize)
        if case .lz4hc = compression {
            hcState = UnsafeMutableRawPointer.allocate(byteCount: Int(LZ4_sizeofStateHC()), alignment: 16)
        } else {
            hcState = nil
        }
    }

    deinit {
        window.deallocate()
        block.deallocate()
        scratch.deallocate()
        hcState?.deallocate()
    }

    /// Compresses `source`, handing each 4 KiB block to `sink` in order.
    func compress(_ source: any FileSource, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> CompressionOutcome {
        let size = source.size
        var extents: [Extent] = []
        var finalRawTail: [UInt8]?
        var pos: UInt64 = 0          // logical offset of the next extent
        var bufStart: UInt64 = 0     // logical offset of window[0]
        var bufLen = 0
        var readPos: UInt64 = 0
        guard let wbase = window.baseAddress, let bbase = block.baseAddress else { return CompressionOutcome(extents: []) }
        let capacity = window.count
        let span = maxExtentBytes
        while pos < size {
            let have = Int(bufStart + UInt64(bufLen) - pos)
            if have < span && readPos < size {
                let shift = Int(pos - bufStart)
                if shift > 0 {
                    memmove(wbase, wbase + shift, have)
                    bufStart = pos
                    bufLen = have
                }
                while bufLen < capacity && readPos < size {
                    let want = min(capacity - bufLen, Int(min(UInt64(Int.max), size - readPos)))
                    let n = try source.read(at: readPos, into: UnsafeMutableRawBufferPointer(start: wbase + bufLen, count: want))
                    guard n == want else { throw EROFSError(.io, "\(source.displayName): short read at \(readPos)") }
                    bufLen += n
                    readPos += UInt64(n)
                }
            }
            let srcPtr = UnsafeRawPointer(wbase + Int(pos - bufStart))
            let avail = min(span, Int(bufStart + UInt64(bufLen) - pos))
            var consumed = 0
            var raw = true
            if avail > bs {
                var taken = Int32(avail)
                let n: Int32
                let s = srcPtr.assumingMemoryBound(to: CChar.self)
                // Compress into scratch, then right-align into the block.
                switch compression {
                case .lz4hc(let level):
                    n = LZ4_compress_HC_destSize(hcState, s, scratch, &taken, Int32(bs), Int32(level))
                default:
                    n = LZ4_compress_destSize(s, scratch, &taken, Int32(bs))
                }
                if n > 0 && Int(taken) > bs {
                    consumed = Int(taken)
                    raw = false
                    bbase.initializeMemory(as: UInt8.self, repeating: 0, count: bs - Int(n))
                    (bbase + bs - Int(n)).copyMemory(from: scratch, byteCount: Int(n))
                }
            }
            if raw {
                consumed = min(bs, avail)
                bbase.copyMemory(from: srcPtr, byteCount: consumed)
                (bbase + consumed).initializeMemory(as: UInt8.self, repeating: 0, count: bs - consumed)
                if pos + UInt64(consumed) == size && consumed < bs {
                    finalRawTail = Array(UnsafeRawBufferPointer(start: srcPtr, count: consumed))
                }
            }
            try sink(UnsafeRawBufferPointer(block))
            extents.append(Extent(start: pos, length: consumed, blkaddr: UInt32(extents.count), raw: raw))
            pos += UInt64(consumed)
        }
        return CompressionOutcome(extents: extents, finalRawTail: finalRawTail)
    }
}
