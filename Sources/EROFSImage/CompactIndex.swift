/// Compact lcluster indexes (the layout mkfs.erofs uses by default): packs of
/// two 16-bit entries (4 bytes each, amortized) or sixteen 14-bit entries (2 bytes
/// each) followed by a 32-bit base block address; head block addresses are
/// implied by counting heads within the pack. Requires 4 KiB lclusters and
/// pclusters of one block stored in order.
enum CompactIndex {
    /// Upper bound of the encoded size (for cost estimates before layout).
    static func maxBytes(count: Int) -> Int { 4 * (count + 8) }

    /// Where the 4B/2B/4B regions fall for an index area starting at `ebase`
    /// (absolute or 32-byte-congruent offset).
    static func regions(count: Int, ebase: Int) -> (initial: Int, twoByte: Int, trailing: Int) {
        var initial = (32 - ebase % 32) / 4
        if initial == 8 { initial = 0 }
        if initial >= count { return (count, 0, 0) }
        let twoByte = (count - initial) / 16 * 16
        return (initial, twoByte, count - initial - twoByte)
    }

    static func size(count: Int, ebase: Int) -> Int {
        let r = regions(count: count, ebase: ebase)
        return EROFSFormat.roundUp(r.initial, 2) * 4 + r.twoByte * 2 + EROFSFormat.roundUp(r.trailing, 2) * 4
    }

    /// Encodes `map`; `ebase` is the index area's offset (only its value mod 32 matters).
    static func encode(_ map: [Lcluster], ebase: Int) -> [UInt8] {
        let r = regions(count: map.count, ebase: ebase)
        var out: [UInt8] = []
        out.reserveCapacity(size(count: map.count, ebase: ebase))
        var i = 0
        func packs(_ n: Int, vcnt: Int) {
            var done = 0
            while done < n {
                let slice = Array(map[(i + done)..<min(i + done + vcnt, i + n)])
                out += pack(slice, vcnt: vcnt)
                done += vcnt
            }
            i += n
        }
        packs(r.initial, vcnt: 2)
        packs(r.twoByte, vcnt: 16)
        packs(r.trailing, vcnt: 2)
        return out
    }

    private static func pack(_ entries: [Lcluster], vcnt: Int) -> [UInt8] {
        let bytes = vcnt == 2 ? 8 : 32
        let encodeBits = (bytes - 4) * 8 / vcnt
        var buf = [UInt8](repeating: 0, count: bytes)
        var base: UInt32 = 0
        var headsBefore: UInt32 = 0
        var baseSet = false
        for (k, e) in entries.enumerated() {
            var lo: UInt32
            if e.type == EROFSFormat.lclusterTypeNonHead {
                lo = UInt32(k == vcnt - 1 ? e.delta1 : e.delta0)
            } else {
                lo = UInt32(e.clusterofs)
                if !baseSet {
                    base = e.blkaddr &- 1 &- headsBefore
                    baseSet = true
                }
                headsBefore += 1
            }
            let value = (lo & 0xFFF) | UInt32(e.type) << 12
            let bit = encodeBits * k
            for b in 0..<14 where value & (1 << UInt32(b)) != 0 {
                let pos = bit + b
                buf[pos / 8] |= UInt8(1 << (pos % 8))
            }
        }
        for b in 0..<4 { buf[bytes - 4 + b] = UInt8(truncatingIfNeeded: base >> UInt32(8 * b)) }
        return buf
    }
}
