import Glibc

/// The metadata pass: inode numbering, xattr sharing, directories, inode layout,
/// and the superblock.
extension EROFSImageWriter {
    struct DirBlock {
        var entries: [([UInt8], Node)]
        var used: Int
    }

    /// Writes directories, inodes and the superblock, and closes the image.
    @discardableResult
    public func finish() throws -> EROFSImageSummary {
        try checkUsable()
        do {
            let summary = try writeMetadata()
            finished = true
            return summary
        } catch {
            failed = true
            throw error
        }
    }

    private func writeMetadata() throws -> EROFSImageSummary {
        let bs = EROFSFormat.blockSize
        try finishLayers()
        try output.padToBlock()

        // 1. Order (breadth-first), link counts, sorted directory entries.
        var order: [Node] = [root]
        var dirEntries: [ObjectIdentifier: [([UInt8], Node)]] = [:]
        var parents: [ObjectIdentifier: Node] = [ObjectIdentifier(root): root]
        root.nlink = 2
        root.ino = 1
        var head = 0
        while head < order.count {
            let dir = order[head]
            head += 1
            guard dir.kind == .directory else { continue }
            let sorted = dir.sortedChildren
            dirEntries[ObjectIdentifier(dir)] = sorted
            for (_, child) in sorted {
                if child.kind == .directory {
                    child.nlink = 2
                    dir.nlink += 1
                    parents[ObjectIdentifier(child)] = dir
                } else {
                    child.nlink += 1
                }
                if child.ino == 0 {
                    child.ino = UInt32(order.count + 1)
                    order.append(child)
                }
            }
        }

        // 2. Build time: the fixed one, or the most common mtime (so most inodes are compact).
        let buildTime = pinnedBuildTime ?? Self.mostCommonMtime(order, fixed: options.fixedTimestamp)

        // 3. Shared xattrs: those used by two inodes or more.
        var xattrUse: [Xattr: Int] = [:]
        var xattrOrder: [Xattr] = []
        for node in order {
            for x in node.xattrs {
                if xattrUse[x] == nil { xattrOrder.append(x) }
                xattrUse[x, default: 0] += 1
            }
        }
        var sharedID: [Xattr: UInt32] = [:]
        var shared = ByteBuffer()
        for x in xattrOrder where (xattrUse[x] ?? 0) >= 2 {
            sharedID[x] = UInt32(shared.count / 4)
            encodeXattr(x, into: &shared)
        }
        for node in order {
            node.sharedXattrIDs = []
            node.inlineXattrs = []
            for x in node.xattrs {
                if let id = sharedID[x], node.sharedXattrIDs.count < 255 {
                    node.sharedXattrIDs.append(id)
                } else {
                    node.inlineXattrs.append(x)
                }
            }
            if node.xattrs.isEmpty {
                node.xattrIbodySize = 0
            } else {
                node.xattrIbodySize = 12 + 4 * node.sharedXattrIDs.count + node.inlineXattrs.reduce(0) { $0 + $1.entrySize }
                guard (node.xattrIbodySize - 12) / 4 + 1 <= 0xFFFF else {
                    throw EROFSError(.unsupported, "inode \(node.ino): too many xattrs")
                }
            }
            node.compact = node.mtime == buildTime.sec && node.mtimeNsec == buildTime.nsec
                && node.uid <= 0xFFFF && node.gid <= 0xFFFF && node.nlink <= 0xFFFF
                && node.size <= UInt64(UInt32.max)
        }

        // 4. Directory blocks and out-of-line symlink targets, placed after the file data.
        var extraCursor = output.nextBlock
        var dirBlocks: [ObjectIdentifier: [DirBlock]] = [:]
        var extraOrder: [Node] = []
        for node in order {
            let isize = node.compact ? EROFSFormat.compactInodeSize : EROFSFormat.extendedInodeSize
            switch node.kind {
            case .directory:
                var entries = dirEntries[ObjectIdentifier(node)] ?? []
                entries.append(([0x2E], node))
                entries.append(([0x2E, 0x2E], parents[ObjectIdentifier(node)] ?? root))
                entries.sort { $0.0.lexicographicallyPrecedes($1.0) }
                var blocks: [DirBlock] = []
                var current = DirBlock(entries: [], used: 0)
                for entry in entries {
                    let need = EROFSFormat.direntSize + entry.0.count
                    if current.used + need > bs {
                        blocks.append(current)
                        current = DirBlock(entries: [], used: 0)
                    }
                    current.entries.append(entry)
                    current.used += need
                }
                blocks.append(current)
                dirBlocks[ObjectIdentifier(node)] = blocks
                let tail = blocks[blocks.count - 1].used
                node.dirSize = UInt64((blocks.count - 1) * bs + tail)
                node.size = node.dirSize
                node.dirInline = tail < bs && isize + node.xattrIbodySize + tail <= bs
                let outOfLine = node.dirInline ? blocks.count - 1 : blocks.count
                node.dirBlkaddr = outOfLine > 0 ? extraCursor : 0
                extraCursor += UInt32(outOfLine)
                if outOfLine > 0 { extraOrder.append(node) }
            case .symlink:
                node.size = UInt64(node.symlinkTarget.count)
                node.dirInline = isize + node.xattrIbodySize + node.symlinkTarget.count <= bs
                if !node.dirInline && !node.symlinkTarget.isEmpty {
                    node.dirBlkaddr = extraCursor
                    extraCursor += 1
                    extraOrder.append(node)
                }
            default:
                break
            }
        }
        let metaBlkaddr = extraCursor

        // 5. Inode layout (nids): best-fit packing of each inode (with its inline
        // tail, which must not cross a block) into partly used metadata blocks.
        var packer = MetaPacker(start: max(EROFSFormat.roundUp(shared.count, 32), 32))
        // Root first (its nid must fit 16 bits), then largest first: best-fit
        // decreasing wastes far less than placing in walk order.
        var sized: [(node: Node, size: Int)] = []
        sized.reserveCapacity(order.count)
        for node in order {
            let fp = footprint(node)
            guard fp.tail == 0 || fp.total <= bs else {
                throw EROFSError(.invalidState, "inode \(node.ino): inline tail no longer fits beside its inode")
            }
            sized.append((node, EROFSFormat.roundUp(fp.total, 32)))
        }
        let rest = sized.dropFirst().sorted { $0.size != $1.size ? $0.size > $1.size : $0.node.ino < $1.node.ino }
        for item in [sized[0]] + rest {
            item.node.metaOffset = packer.place(item.size)
            item.node.nid = UInt64(item.node.metaOffset / 32)
        }
        let metaSize = packer.end
        guard root.nid <= 0xFFFF else { throw EROFSError(.limitExceeded, "root nid exceeds 16 bits") }

        // 6. Directory blocks and symlink blocks.
        for node in extraOrder {
            if node.kind == .symlink {
                var block = ByteBuffer(capacity: bs)
                block.append(node.symlinkTarget)
                block.pad(to: bs)
                try output.write(block.bytes)
                continue
            }
            let blocks = dirBlocks[ObjectIdentifier(node)] ?? []
            let count = node.dirInline ? blocks.count - 1 : blocks.count
            for b in 0..<count {
                var block = encodeDirBlock(blocks[b])
                block.pad(to: bs)
                try output.write(block.bytes)
            }
        }
        guard output.nextBlock == metaBlkaddr, output.position % UInt64(bs) == 0 else {
            throw EROFSError(.invalidState, "internal: directory area size mismatch")
        }

        // 7. Metadata: shared xattrs, then inodes in offset order.
        var meta = ByteBuffer(capacity: 1 << 20)
        var written = 0
        meta.append(shared.bytes)
        let byOffset = order.sorted { $0.metaOffset < $1.metaOffset }
        for node in byOffset {
            let pos = node.metaOffset - written
            if meta.count < pos { meta.zeros(pos - meta.count) }
            try encodeInode(node, blocks: dirBlocks[ObjectIdentifier(node)], into: &meta)
            if meta.count > 1 << 20 {
                // Flush whole 32-byte-aligned prefix; later inodes never go back before cursor.
                let keep = meta.count % 32
                let cut = meta.count - keep
                try output.write(Array(meta.bytes[0..<cut]))
                written += cut
                meta.bytes.removeFirst(cut)
            }
        }
        if written + meta.count < metaSize { meta.zeros(metaSize - written - meta.count) }
        try output.write(meta.bytes)
        try output.padToBlock()
        let totalBlocks = output.nextBlock

        // 8. Superblock.
        var sb = ByteBuffer(capacity: 128)
        sb.u32(EROFSFormat.magic)
        sb.u32(0)                                   // checksum (feature off)
        sb.u32(EROFSFormat.featureCompatMTime)
        sb.u8(EROFSFormat.blockSizeBits)
        sb.u8(0)                                    // sb_extslots
        sb.u16(UInt16(root.nid))
        sb.u64(UInt64(order.count))                 // inos
        sb.u64(UInt64(bitPattern: buildTime.sec))
        sb.u32(buildTime.nsec)
        sb.u32(totalBlocks)
        sb.u32(metaBlkaddr)
        sb.u32(metaBlkaddr)                         // xattr_blkaddr: shared xattrs start the meta area
        sb.append(options.uuid)
        var label = Array(options.volumeName.utf8)
        label += [UInt8](repeating: 0, count: 16 - label.count)
        sb.append(label)
        var incompat: UInt32 = EROFSFormat.featureIncompatZeroPadding
        if data.usedChunks { incompat |= EROFSFormat.featureIncompatChunkedFile }
        sb.u32(incompat)
        sb.u16(0)                                   // lz4_max_distance: default
        sb.zeros(128 - sb.count)
        try output.pwrite(sb.bytes, at: UInt64(EROFSFormat.superOffset))
        try output.sync()
        return EROFSImageSummary(imageBytes: UInt64(totalBlocks) * UInt64(bs), inodes: order.count, compressedFiles: compressedFiles)
    }

    /// The fixed timestamp, or the most common mtime (ties: the earliest).
    static func mostCommonMtime(_ nodes: [Node], fixed: Int64?) -> (sec: Int64, nsec: UInt32) {
        if let fixed { return (fixed, 0) }
        var counts: [Int64: Int] = [:]
        for node in nodes { counts[node.mtime &* 1_000_000_000 &+ Int64(node.mtimeNsec), default: 0] += 1 }
        guard let best = counts.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }),
              let node = nodes.first(where: { $0.mtime &* 1_000_000_000 &+ Int64($0.mtimeNsec) == best.key }) else {
            return (0, 0)
        }
        return (node.mtime, node.mtimeNsec)
    }

    /// After a directory scan: the exact room beside each scanned file's inode for
    /// an inline tail, given the build time (pinned now), link counts and xattr
    /// sharing as they stand. Later additions can only make inodes smaller (more
    /// sharing), never larger, except by pushing a link count past 65535.
    func predictInlineBudgets() -> [Int] {
        var nodes: [Node] = []
        var seen = Set<ObjectIdentifier>()
        var names: [ObjectIdentifier: Int] = [:]
        var stack = [root]
        while let dir = stack.popLast() {
            if seen.insert(ObjectIdentifier(dir)).inserted { nodes.append(dir) }
            for child in dir.children.values {
                names[ObjectIdentifier(child), default: 0] += 1
                if seen.insert(ObjectIdentifier(child)).inserted {
                    nodes.append(child)
                    if child.kind == .directory { stack.append(child) }
                }
            }
        }
        let buildTime = pinnedBuildTime ?? Self.mostCommonMtime(nodes, fixed: options.fixedTimestamp)
        pinnedBuildTime = buildTime
        var uses: [Xattr: Int] = [:]
        for node in nodes { for x in node.xattrs { uses[x, default: 0] += 1 } }
        return scanFiles.map { file in
            let node = file.node
            let compact = node.mtime == buildTime.sec && node.mtimeNsec == buildTime.nsec
                && node.uid <= 0xFFFF && node.gid <= 0xFFFF && (names[ObjectIdentifier(node)] ?? 1) < 0xFFFF
                && node.size <= UInt64(UInt32.max)
            var xattrSize = 0
            if !node.xattrs.isEmpty {
                var shared = 0
                xattrSize = 12
                for x in node.xattrs {
                    if (uses[x] ?? 0) >= 2 && shared < 255 {
                        shared += 1
                        xattrSize += 4
                    } else {
                        xattrSize += x.entrySize
                    }
                }
            }
            let isize = compact ? EROFSFormat.compactInodeSize : EROFSFormat.extendedInodeSize
            return max(0, EROFSFormat.blockSize - isize - xattrSize)
        }
    }

    struct Footprint {
        /// Bytes from the inode start to the tail (or the end when there is none).
        var head: Int
        var tail: Int
        var total: Int { head + tail }
    }

    private func footprint(_ node: Node) -> Footprint {
        let isize = node.compact ? EROFSFormat.compactInodeSize : EROFSFormat.extendedInodeSize
        let base = isize + node.xattrIbodySize
        switch node.kind {
        case .regular:
            switch node.data {
            case .plain(_, _, let tail?): return Footprint(head: base, tail: tail.length)
            case .chunked(_, let map): return Footprint(head: EROFSFormat.roundUp(base, 4) + 4 * map.count, tail: 0)
            case .compressed(let map, _):
                let ebase = EROFSFormat.roundUp(base, 8) + 8
                return Footprint(head: ebase + CompactIndex.size(count: map.count, ebase: ebase), tail: 0)
            default: return Footprint(head: base, tail: 0)
            }
        case .directory:
            return Footprint(head: base, tail: node.dirInline ? Int(node.dirSize % UInt64(EROFSFormat.blockSize)) : 0)
        case .symlink:
            return Footprint(head: base, tail: node.dirInline ? node.symlinkTarget.count : 0)
        default:
            return Footprint(head: base, tail: 0)
        }
    }
}
