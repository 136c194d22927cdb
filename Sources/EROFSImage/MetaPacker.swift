/// Best-fit placement of 32-byte-aligned items into metadata blocks. Items up to
/// a block never cross a block boundary (so inline tails never do); larger ones
/// take fresh blocks.
struct MetaPacker {
    private let bs = EROFSFormat.blockSize
    /// Next free offset inside each partly used block, by block index.
    private var used: [Int: Int] = [:]
    /// Blocks by free space in 32-byte units (entries may be stale).
    private var buckets: [[Int]]
    /// Start of the first never-used block.
    private var fresh: Int
    private(set) var end: Int

    init(start: Int) {
        buckets = Array(repeating: [], count: EROFSFormat.blockSize / 32 + 1)
        fresh = EROFSFormat.roundUp(start, EROFSFormat.blockSize)
        end = start
        if start % bs != 0 { note(block: start / bs, next: start) }
    }

    private mutating func note(block: Int, next: Int) {
        used[block] = next
        let free = (block + 1) * bs - next
        if free >= 32 { buckets[free / 32].append(block) }
    }

    mutating func place(_ size: Int) -> Int {
        if size <= bs {
            let units = size / 32
            for k in units..<buckets.count {
                while let block = buckets[k].popLast() {
                    guard let next = used[block], ((block + 1) * bs - next) / 32 == k else { continue }
                    note(block: block, next: next + size)
                    end = max(end, next + size)
                    return next
                }
            }
        }
        let at = fresh
        let last = at + size
        fresh = EROFSFormat.roundUp(last, bs)
        end = max(end, last)
        if last % bs != 0 { note(block: last / bs, next: last) }
        return at
    }
}
