import Glibc

/// Serialization of inodes, xattrs and directory blocks.
extension EROFSImageWriter {
    func encodeXattr(_ x: Xattr, into buf: inout ByteBuffer) {
        buf.u8(UInt8(x.name.count))
        buf.u8(x.index)
        buf.u16(UInt16(x.value.count))
        buf.append(x.name)
        buf.append(x.value)
        buf.pad(to: 4)
    }

    func encodeDirBlock(_ block: DirBlock) -> ByteBuffer {
        var buf = ByteBuffer(capacity: EROFSFormat.blockSize)
        var nameOff = EROFSFormat.direntSize * block.entries.count
        for (name, node) in block.entries {
            buf.u64(node.nid)
            buf.u16(UInt16(nameOff))
            buf.u8(node.direntType)
            buf.u8(0)
            nameOff += name.count
        }
        for (name, _) in block.entries { buf.append(name) }
        return buf
    }

    func encodeInode(_ node: Node, blocks: [DirBlock]?, into meta: inout ByteBuffer) throws {
        let bs = EROFSFormat.blockSize
        var layout = EROFSFormat.layoutFlatPlain
        var iu: UInt32 = 0
        var tailBytes: [UInt8] = []
        var trailer: [UInt8] = []          // indexes / block map, after alignment
        var trailerAlign = 1
        switch node.kind {
        case .regular:
            switch node.data {
            case .empty:
                break
            case .plain(let blkaddr, _, let tail):
                iu = blkaddr
                if let tail {
                    layout = EROFSFormat.layoutFlatInline
                    tailBytes = try tails.read(tail)
                }
            case .chunked(let bits, let map):
                // A 4-byte block map; EROFS_NULL_ADDR marks a hole.
                layout = EROFSFormat.layoutChunkBased
                iu = UInt32(bits)
                var b = ByteBuffer(capacity: 4 * map.count)
                for a in map { b.u32(a) }
                trailer = b.bytes
                trailerAlign = 4
            case .compressed(let map, let blocks):
                layout = EROFSFormat.layoutCompressedCompact
                iu = blocks
                let isize = node.compact ? EROFSFormat.compactInodeSize : EROFSFormat.extendedInodeSize
                let ebase = EROFSFormat.roundUp(isize + node.xattrIbodySize, 8) + 8
                var b = ByteBuffer(capacity: 8 + CompactIndex.size(count: map.count, ebase: ebase))
                b.u16(0); b.u16(0)          // h_reserved1, h_idata_size
                b.u16(0x1)                  // h_advise: COMPACTED_2B
                b.u8(0)                     // lz4
                b.u8(0)                     // 4 KiB lclusters
                b.append(CompactIndex.encode(map, ebase: ebase))
                trailer = b.bytes
                trailerAlign = 8
            }
        case .directory:
            iu = node.dirBlkaddr
            if node.dirInline, let last = blocks?.last {
                layout = EROFSFormat.layoutFlatInline
                tailBytes = encodeDirBlock(last).bytes
            }
        case .symlink:
            if node.dirInline {
                layout = EROFSFormat.layoutFlatInline
                tailBytes = node.symlinkTarget
            } else {
                iu = node.dirBlkaddr
            }
        case .charDevice, .blockDevice:
            iu = node.rdev
        case .fifo, .socket:
            break
        }
        let start = meta.count
        let mode = UInt16(truncatingIfNeeded: node.fileTypeBits) | node.permissions
        let icount: UInt16 = node.xattrIbodySize == 0 ? 0 : UInt16((node.xattrIbodySize - 12) / 4 + 1)
        if node.compact {
            meta.u16(layout << 1)
            meta.u16(icount)
            meta.u16(mode)
            meta.u16(UInt16(node.nlink))
            meta.u32(UInt32(node.size))
            meta.u32(0)
            meta.u32(iu)
            meta.u32(node.ino)
            meta.u16(UInt16(node.uid))
            meta.u16(UInt16(node.gid))
            meta.u32(0)
        } else {
            meta.u16(layout << 1 | 1)
            meta.u16(icount)
            meta.u16(mode)
            meta.u16(0)
            meta.u64(node.size)
            meta.u32(iu)
            meta.u32(node.ino)
            meta.u32(node.uid)
            meta.u32(node.gid)
            meta.u64(UInt64(bitPattern: node.mtime))
            meta.u32(node.mtimeNsec)
            meta.u32(node.nlink)
            meta.zeros(16)
        }
        if node.xattrIbodySize > 0 {
            meta.u32(0)
            meta.u8(UInt8(node.sharedXattrIDs.count))
            meta.zeros(7)
            for id in node.sharedXattrIDs { meta.u32(id) }
            for x in node.inlineXattrs { encodeXattr(x, into: &meta) }
        }
        if !trailer.isEmpty {
            meta.zeros(EROFSFormat.roundUp(meta.count - start, trailerAlign) - (meta.count - start))
            meta.append(trailer)
        }
        meta.append(tailBytes)
        _ = bs
    }
}
