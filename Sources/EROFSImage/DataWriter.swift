import Glibc

/// Writes file contents into the data area and returns how they were laid out.
final class DataWriter {
    let output: ImageOutput
    let tails: TailStore
    let compression: EROFSCompression
    let maxExtentBytes: Int
    private let bs = EROFSFormat.blockSize
    private var io: UnsafeMutableRawBufferPointer
    private let compressor: Compressor
    /// Whether any chunk-based file was written (a superblock feature bit).
    private(set) var usedChunks = false
    /// Whether any compressed file was written.
    private(set) var usedCompression = false

    init(output: ImageOutput, tails: TailStore, compression: EROFSCompression, maxExtentBytes: Int) {
        self.output = output
        self.tails = tails
        self.compression = compression
        self.maxExtentBytes = maxExtentBytes
        io = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        compressor = Compressor(compression: compression, maxExtentBytes: maxExtentBytes, sizeHint: UInt64.max)
    }

    deinit {
        io.deallocate()
    }

    /// Writes one regular file. `inlineBudget` is how many tail bytes may go inline
    /// next to the inode (0 disables inlining).
    func write(_ source: any FileSource, inlineBudget: Int) throws -> FileData {
        let size = source.size
        if size == 0 { return .empty }
        if let segments = source.dataSegments, isWorthChunking(size: size, segments: segments) {
            return try writeChunked(source, segments: segments)
        }
        if compression != .none, size > UInt64(bs) {
            let start = output.position
            if let result = try writeCompressed(source, inlineBudget: inlineBudget) { return result }
            if source.rewindable {
                try output.truncate(to: start)
            } else {
                // Could not re-read: keep the compressed form (it costs at most a block).
                if let kept = lastCompressed { return kept }
            }
        }
        return try writePlain(source, inlineBudget: inlineBudget)
    }

    private var lastCompressed: FileData?
    private var copyFileRangeFailed = false

    /// Whether `source` may be compressed on a worker (read-anywhere, dense, bounded).
    func canCompressAsync(_ source: any FileSource) -> Bool {
        compression != .none && source.rewindable && source.dataSegments == nil
            && source.size > UInt64(bs) && source.size <= 16 << 20
    }

    /// Writes a file compressed by a worker (`blocks` in order), or stores it
    /// plainly when that is smaller.
    func commit(_ outcome: CompressionOutcome, blocks: [UInt8], source: any FileSource, inlineBudget: Int) throws -> FileData {
        let allRaw = outcome.extents.allSatisfy { $0.raw }
        if !allRaw && !outcome.pays(size: source.size, inlineBudget: inlineBudget) {
            return try writePlain(source, inlineBudget: inlineBudget)
        }
        let first = output.nextBlock
        try output.write(blocks)
        if let result = try finishCompressed(outcome, firstBlock: first, size: source.size, inlineBudget: inlineBudget) {
            return result
        }
        return try writePlain(source, inlineBudget: inlineBudget)
    }

    // MARK: plain

    func writePlain(_ source: any FileSource, inlineBudget: Int) throws -> FileData {
        let size = source.size
        let fullBlocks = size / UInt64(bs)
        let tailLength = Int(size % UInt64(bs))
        let inlineTail = tailLength > 0 && tailLength <= inlineBudget
        let blkaddr = output.nextBlock
        var offset: UInt64 = 0
        let bodyEnd = inlineTail ? fullBlocks * UInt64(bs) : size
        if let host = source as? HostFileSource, bodyEnd >= 65536, !copyFileRangeFailed {
            if try output.copy(from: host.fd, offset: 0, count: bodyEnd) {
                offset = bodyEnd
            } else {
                copyFileRangeFailed = true
            }
        }
        while offset < bodyEnd {
            let want = Int(min(UInt64(io.count), bodyEnd - offset))
            let n = try source.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: io[0..<want]))
            guard n == want else { throw EROFSError(.io, "\(source.displayName): short read at \(offset)") }
            try output.write(UnsafeRawBufferPointer(rebasing: io[0..<n]))
            offset += UInt64(n)
        }
        try output.padToBlock()
        var tail: TailRef?
        if inlineTail {
            let n = try source.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: io[0..<tailLength]))
            guard n == tailLength else { throw EROFSError(.io, "\(source.displayName): short read of tail") }
            tail = try tails.append(UnsafeRawBufferPointer(rebasing: io[0..<n]))
        }
        let blocks = UInt32(inlineTail ? fullBlocks : fullBlocks + (tailLength > 0 ? 1 : 0))
        return .plain(blkaddr: blocks == 0 ? 0 : blkaddr, blocks: blocks, tail: tail)
    }

    // MARK: chunk-based (sparse files)

    private func chunkBits(for size: UInt64) -> UInt8 {
        // Keep the block map at most ~16 Ki entries (64 KiB of metadata).
        var bits: UInt8 = 0
        while (size >> (12 + UInt64(bits))) > 16384 && bits < 19 { bits += 1 }
        return bits
    }

    private func isWorthChunking(size: UInt64, segments: [Range<UInt64>]) -> Bool {
        let chunk = UInt64(bs) << UInt64(chunkBits(for: size))
        // Worth it when at least one whole chunk is a hole.
        var covered = Set<UInt64>()
        for segment in segments where !segment.isEmpty {
            var c = segment.lowerBound / chunk
            while c * chunk < segment.upperBound {
                covered.insert(c)
                c += 1
                if covered.count > 1 << 20 { return false }
            }
        }
        let chunks = (size + chunk - 1) / chunk
        return UInt64(covered.count) < chunks
    }

    func writeChunked(_ source: any FileSource, segments: [Range<UInt64>]) throws -> FileData {
        usedChunks = true
        let size = source.size
        let bits = chunkBits(for: size)
        let chunk = UInt64(bs) << UInt64(bits)
        let count = Int((size + chunk - 1) / chunk)
        var map = [UInt32](repeating: EROFSFormat.nullAddress, count: count)
        var segmentIndex = 0
        for c in 0..<count {
            let start = UInt64(c) * chunk
            let end = min(start + chunk, size)
            while segmentIndex < segments.count, segments[segmentIndex].upperBound <= start { segmentIndex += 1 }
            guard segmentIndex < segments.count, segments[segmentIndex].lowerBound < end else { continue }
            map[c] = output.nextBlock
            var offset = start
            while offset < end {
                let want = Int(min(UInt64(io.count), end - offset))
                let n = try source.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: io[0..<want]))
                guard n == want else { throw EROFSError(.io, "\(source.displayName): short read at \(offset)") }
                try output.write(UnsafeRawBufferPointer(rebasing: io[0..<n]))
                offset += UInt64(n)
            }
            try output.padToBlock()
        }
        return .chunked(chunkBits: bits, map: map)
    }

    // MARK: compressed


    /// Compresses a file straight into the image (used for files too big to
    /// buffer and for sources that can be read only once).
    private func writeCompressed(_ source: any FileSource, inlineBudget: Int) throws -> FileData? {
        lastCompressed = nil
        let firstBlock = output.nextBlock
        let outcome = try compressor.compress(source) { block in try self.output.write(block) }
        return try finishCompressed(outcome, firstBlock: firstBlock, size: source.size, inlineBudget: inlineBudget)
    }

    /// Turns a compression outcome whose blocks were written at `firstBlock` into
    /// the file's layout; nil when plain storage would be smaller.
    func finishCompressed(_ outcome: CompressionOutcome, firstBlock: UInt32, size: UInt64, inlineBudget: Int) throws -> FileData? {
        let extents = outcome.extents.map { e -> Extent in
            var e = e
            e.blkaddr += firstBlock
            return e
        }
        let blocks = extents.count
        if extents.allSatisfy({ $0.raw }), let first = extents.first {
            // Every pcluster is plain: that is exactly the flat layout, for free;
            // only move a short tail inline, as a plain write would have.
            if let tailBytes = outcome.finalRawTail, tailBytes.count <= inlineBudget {
                try output.truncate(to: output.position - UInt64(bs))
                let tail = try tailBytes.withUnsafeBytes { try tails.append($0) }
                return .plain(blkaddr: blocks > 1 ? first.blkaddr : 0, blocks: UInt32(blocks - 1), tail: tail)
            }
            return .plain(blkaddr: first.blkaddr, blocks: UInt32(blocks), tail: nil)
        }
        let lclusters = buildLclusters(extents, size: size)
        let result = FileData.compressed(lclusters: lclusters, blocks: UInt32(blocks))
        if !outcome.pays(size: size, inlineBudget: inlineBudget) {
            lastCompressed = result
            return nil
        }
        usedCompression = true
        return result
    }

    /// The logical cluster map for one-block pclusters: one entry per 4 KiB of
    /// file, with a fake head at EOF when the last extent ends inside an lcluster
    /// that it did not start in (so no mapping ever runs past the data).
    private func buildLclusters(_ extents: [Extent], size: UInt64) -> [Lcluster] {
        let lcs = UInt64(bs)
        let count = Int((size + lcs - 1) / lcs)
        var map = [Lcluster](repeating: Lcluster(type: EROFSFormat.lclusterTypeNonHead, clusterofs: 0, blkaddr: 0, delta0: 0, delta1: 0), count: count)
        var isHead = [Bool](repeating: false, count: count)
        for e in extents {
            let i = Int(e.start / lcs)
            map[i] = Lcluster(type: e.raw ? EROFSFormat.lclusterTypePlain : EROFSFormat.lclusterTypeHead,
                              clusterofs: UInt16(e.start % lcs), blkaddr: e.blkaddr, delta0: 0, delta1: 0)
            isHead[i] = true
        }
        if size % lcs != 0, !isHead[count - 1], let last = extents.last {
            map[count - 1] = Lcluster(type: EROFSFormat.lclusterTypePlain, clusterofs: UInt16(size % lcs),
                                      blkaddr: last.blkaddr + 1, delta0: 0, delta1: 0)
            isHead[count - 1] = true
        }
        var lastHead = 0
        for i in 0..<count {
            if isHead[i] { lastHead = i } else { map[i].delta0 = UInt16(i - lastHead) }
        }
        var nextHead = count
        for i in stride(from: count - 1, through: 0, by: -1) {
            if isHead[i] { nextHead = i } else { map[i].delta1 = UInt16(nextHead - i) }
        }
        return map
    }
}
