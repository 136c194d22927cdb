import CEROFSLZ4
import Glibc

extension EROFSReader {
    /// Reads `count` bytes of a file (or directory/symlink) starting at `offset`
    /// (fewer at end of file).
    public func readRange(_ inode: EROFSInode, at offset: UInt64, count: Int) throws -> [UInt8] {
        guard offset < inode.size, count > 0 else { return [] }
        let n = Int(min(UInt64(count), inode.size - offset))
        guard n <= 64 << 20 else { throw EROFSError(.invalidArgument, "read of \(n) bytes at once") }
        switch inode.layout {
        case EROFSFormat.layoutFlatPlain, EROFSFormat.layoutFlatInline:
            return try readFlat(inode, offset, n)
        case EROFSFormat.layoutChunkBased:
            return try readChunked(inode, offset, n)
        case EROFSFormat.layoutCompressedFull, EROFSFormat.layoutCompressedCompact:
            return try readCompressed(inode, offset, n)
        default:
            throw EROFSError(.unsupported, "nid \(inode.nid): layout \(inode.layout) not supported by the reader")
        }
    }

    private func readFlat(_ inode: EROFSInode, _ offset: UInt64, _ n: Int) throws -> [UInt8] {
        let blocks = (inode.size + bs - 1) / bs
        let inlineTail = inode.layout == EROFSFormat.layoutFlatInline
        let lastBlock = inlineTail ? blocks - 1 : blocks
        var out: [UInt8] = []
        out.reserveCapacity(n)
        var pos = offset
        let end = offset + UInt64(n)
        while pos < end {
            if pos < lastBlock * bs {
                let take = min(end, lastBlock * bs) - pos
                out += try read(UInt64(inode.rawU) * bs + pos, Int(take))
                pos += take
            } else {
                let tailStart = inode.offset + UInt64(inode.inodeSize + inode.xattrSize)
                let tailLen = inode.size - lastBlock * bs
                guard tailStart % bs + tailLen <= bs else {
                    throw EROFSError(.corruptImage, "nid \(inode.nid): inline data crosses a block boundary")
                }
                out += try read(tailStart + (pos - lastBlock * bs), Int(end - pos))
                pos = end
            }
        }
        return out
    }

    private func readChunked(_ inode: EROFSInode, _ offset: UInt64, _ n: Int) throws -> [UInt8] {
        let format = inode.rawU & 0xFFFF
        let chunkBits = UInt64(format & 0x1F) + 12
        let unit: UInt64 = format & 0x20 != 0 ? 8 : 4
        let base = EROFSFormat.roundUp(inode.offset + UInt64(inode.inodeSize + inode.xattrSize), unit)
        var out: [UInt8] = []
        out.reserveCapacity(n)
        var pos = offset
        let end = offset + UInt64(n)
        while pos < end {
            let chunk = pos >> chunkBits
            let chunkEnd = min((chunk + 1) << chunkBits, end)
            let entry = try read(base + unit * chunk, Int(unit))
            let blkaddr = unit == 8 ? entry.le32(4) : entry.le32(0)
            let take = Int(chunkEnd - pos)
            if blkaddr == EROFSFormat.nullAddress {
                out += [UInt8](repeating: 0, count: take)
            } else {
                out += try read(UInt64(blkaddr) * bs + (pos - (chunk << chunkBits)), take)
            }
            pos = chunkEnd
        }
        return out
    }

    private struct ExtentInfo {
        var start: UInt64
        var end: UInt64
        var blkaddr: UInt32
        var raw: Bool
    }

    /// One lcluster index: type, clusterofs (heads) and the block address (heads)
    /// or the distance back to the head (non-heads).
    private func lcluster(_ inode: EROFSInode, _ lcn: UInt64) throws -> (type: UInt16, clusterofs: UInt16, word: UInt32) {
        let aligned = EROFSFormat.roundUp(inode.offset + UInt64(inode.inodeSize + inode.xattrSize), 8)
        if inode.layout == EROFSFormat.layoutCompressedFull {
            let e = try read(aligned + 16 + 8 * lcn, 8)
            return (e.le16(0) & 3, e.le16(2), e.le32(4))
        }
        let ebase = aligned + 8
        let total = (inode.size + bs - 1) / bs
        let advise = try read(aligned, 8).le16(4)
        var initial = (32 - ebase % 32) / 4
        if initial == 8 { initial = 0 }
        let twoByte = advise & 1 != 0 && initial < total ? (total - initial) / 16 * 16 : 0
        var pos = ebase
        var shift: UInt64 = 2
        if lcn < initial {
            pos += lcn * 4
        } else if lcn - initial < twoByte {
            shift = 1
            pos += initial * 4 + (lcn - initial) * 2
        } else {
            pos += initial * 4 + twoByte * 2 + (lcn - initial - twoByte) * 4
        }
        let vcnt: UInt64 = shift == 2 ? 2 : 16
        let packBytes = vcnt << shift
        let packStart = pos / packBytes * packBytes
        let pack = try read(packStart, Int(packBytes))
        let encodeBits = Int((packBytes - 4) * 8 / vcnt)
        func decode(_ i: Int) -> (lo: UInt32, type: UInt16) {
            let bit = encodeBits * i
            var v: UInt32 = 0
            for b in 0..<4 where bit / 8 + b < pack.count { v |= UInt32(pack[bit / 8 + b]) << UInt32(8 * b) }
            v >>= UInt32(bit & 7)
            return (v & 0xFFF, UInt16((v >> 12) & 3))
        }
        let i = Int((pos - packStart) >> shift)
        let (lo, type) = decode(i)
        if type == EROFSFormat.lclusterTypeNonHead {
            if i + 1 != Int(vcnt) { return (type, 0, lo) }
            let prev = decode(i - 1)
            return (type, 0, prev.type == EROFSFormat.lclusterTypeNonHead ? prev.lo + 1 : 1)
        }
        var nblk: UInt32 = 1
        var j = i
        while j > 0 {
            j -= 1
            let d = decode(j)
            if d.type == EROFSFormat.lclusterTypeNonHead { j -= Int(d.lo) }
            if j >= 0 { nblk += 1 }
        }
        return (type, UInt16(lo), pack.le32(Int(packBytes) - 4) &+ nblk)
    }

    /// Finds the extent containing `pos` using full lcluster indexes.
    private func extent(_ inode: EROFSInode, containing pos: UInt64) throws -> ExtentInfo {
        let lcs = bs
        let count = (inode.size + lcs - 1) / lcs
        var lcn = pos / lcs
        var idx = try lcluster(inode, lcn)
        if idx.type != EROFSFormat.lclusterTypeNonHead && pos % lcs < UInt64(idx.clusterofs) {
            guard lcn > 0 else { throw EROFSError(.corruptImage, "nid \(inode.nid): lcluster 0 does not start an extent") }
            lcn -= 1
            idx = try lcluster(inode, lcn)
        }
        var steps = 0
        while idx.type == EROFSFormat.lclusterTypeNonHead {
            let delta = UInt64(idx.word & 0x7FF)
            guard delta > 0, delta <= lcn, steps < 4096 else { throw EROFSError(.corruptImage, "nid \(inode.nid): bad lookback") }
            lcn -= delta
            idx = try lcluster(inode, lcn)
            steps += 1
        }
        guard idx.type == EROFSFormat.lclusterTypePlain || idx.type == EROFSFormat.lclusterTypeHead else {
            throw EROFSError(.unsupported, "nid \(inode.nid): lcluster type \(idx.type)")
        }
        let start = lcn * lcs + UInt64(idx.clusterofs)
        // The extent ends where the next head starts (or at EOF).
        var next = lcn + 1
        var end = inode.size
        while next < count {
            let n = try lcluster(inode, next)
            if n.type != EROFSFormat.lclusterTypeNonHead {
                end = min(inode.size, next * lcs + UInt64(n.clusterofs))
                break
            }
            next += 1
            guard next - lcn < 8192 else { throw EROFSError(.corruptImage, "nid \(inode.nid): extent too long") }
        }
        guard start <= pos, end > pos, end - start <= UInt64(maxExtent) else {
            throw EROFSError(.corruptImage, "nid \(inode.nid): inconsistent extent \(start)..<\(end) for \(pos)")
        }
        return ExtentInfo(start: start, end: end, blkaddr: idx.word, raw: idx.type == EROFSFormat.lclusterTypePlain)
    }

    private func readCompressed(_ inode: EROFSInode, _ offset: UInt64, _ n: Int) throws -> [UInt8] {
        let header = try read(EROFSFormat.roundUp(inode.offset + UInt64(inode.inodeSize + inode.xattrSize), 8), 8)
        guard header.le16(4) & ~1 == 0, header[6] == 0, header[7] == 0 else {
            throw EROFSError(.unsupported, "nid \(inode.nid): compression features \(header) not supported by the reader")
        }
        var out: [UInt8] = []
        out.reserveCapacity(n)
        var pos = offset
        let end = offset + UInt64(n)
        while pos < end {
            let bytes: [UInt8]
            let start: UInt64
            if let cache = extentCache, cache.nid == inode.nid, cache.start <= pos, pos < cache.start + UInt64(cache.bytes.count) {
                bytes = cache.bytes
                start = cache.start
            } else {
                let e = try extent(inode, containing: pos)
                let length = Int(e.end - e.start)
                let block = try read(UInt64(e.blkaddr) * bs, Int(bs))
                if e.raw {
                    guard length <= Int(bs) else { throw EROFSError(.corruptImage, "nid \(inode.nid): plain extent too long") }
                    bytes = Array(block[0..<length])
                } else {
                    let skip = block.firstIndex { $0 != 0 } ?? block.count
                    var decoded = [UInt8](repeating: 0, count: length)
                    let got = block.withUnsafeBytes { src in
                        decoded.withUnsafeMutableBytes { dst in
                            LZ4_decompress_safe(src.baseAddress!.assumingMemoryBound(to: CChar.self) + skip,
                                                dst.baseAddress!.assumingMemoryBound(to: CChar.self),
                                                Int32(block.count - skip), Int32(length))
                        }
                    }
                    guard got == Int32(length) else {
                        throw EROFSError(.corruptImage, "nid \(inode.nid): lz4 extent at block \(e.blkaddr) decoded \(got) of \(length) bytes")
                    }
                    bytes = decoded
                }
                start = e.start
                extentCache = (inode.nid, start, bytes)
            }
            let from = Int(pos - start)
            let take = min(bytes.count - from, Int(end - pos))
            out += bytes[from..<(from + take)]
            pos += UInt64(take)
        }
        return out
    }
}
