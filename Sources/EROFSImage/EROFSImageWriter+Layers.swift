import Glibc

/// What to do with OCI whiteouts in layer tars.
public enum EROFSWhiteoutMode: Sendable {
    /// Keep them in overlayfs form (`.wh.x` → char 0/0 `x`, `.wh..wh..opq` →
    /// `trusted.overlay.opaque=y`), so the image can be an overlay lowerdir.
    case overlay
    /// Apply them to what earlier layers added (merging layers into one tree).
    case apply
}

extension EROFSImageWriter {
    func finishLayers() throws { try drainPending() }

    /// Adds one OCI layer tar (plain or gzip-compressed), streaming its file data
    /// into the image. The tar is untrusted: entries that would escape the root,
    /// hardlinks to missing or outside targets, duplicates, absurd sizes and
    /// corrupt or truncated streams fail with an `EROFSError` naming the entry.
    /// After an error the writer is unusable (the partial image must be discarded).
    public func addLayer(tarPath: String, whiteouts: EROFSWhiteoutMode) throws {
        try checkUsable()
        let fd = open(tarPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            failed = true
            throw EROFSError.errno("open \(tarPath)")
        }
        defer { close(fd) }
        do {
            var st = stat()
            let total: UInt64? = fstat(fd, &st) == 0 ? UInt64(st.st_size) : nil
            var magic = [UInt8](repeating: 0, count: 2)
            let n = magic.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 2, 0) }
            let raw = FileByteStream(fd: fd, name: tarPath)
            let stream: any ByteStream
            if n == 2 && magic == [0x1F, 0x8B] {
                stream = try GzipByteStream(source: raw, name: tarPath, prefix: [])
            } else {
                stream = raw
            }
            try addLayer(stream: StreamReader(stream: stream, name: tarPath), whiteouts: whiteouts, inputTotal: total)
        } catch {
            failed = true
            throw error
        }
    }

    private func addLayer(stream: StreamReader, whiteouts: EROFSWhiteoutMode, inputTotal: UInt64?) throws {
        layerCount += 1
        let layer = layerCount
        let tar = TarReader(input: stream, limits: options.tarLimits)
        while let entry = try tar.next() {
            try apply(entry, from: tar, layer: layer, whiteouts: whiteouts)
            entriesAdded += 1
            reportProgress(inputBytes: stream.consumedInput, inputTotal: inputTotal)
        }
    }

    /// Splits and checks a tar path: no absolute paths, no `..`, no empty names.
    func components(_ path: [UInt8], entry: String) throws -> [[UInt8]] {
        if path.first == 0x2F {
            throw EROFSError(.unsafePath, "entry \(entry): absolute path")
        }
        var result: [[UInt8]] = []
        for part in path.split(separator: 0x2F, omittingEmptySubsequences: true) {
            if part.elementsEqual([0x2E]) { continue }
            if part.elementsEqual([0x2E, 0x2E]) { throw EROFSError(.unsafePath, "entry \(entry): path contains '..'") }
            guard part.count <= 255 else { throw EROFSError(.unsupported, "entry \(entry): a name is longer than 255 bytes") }
            result.append(Array(part))
        }
        return result
    }

    /// Walks to the directory holding `parts.last`, creating missing directories
    /// when `create` is set. Refuses to pass through anything but a directory.
    func parentDirectory(_ parts: ArraySlice<[UInt8]>, entry: String, create: Bool, layer: Int) throws -> Node? {
        var dir = root
        for part in parts {
            if let child = dir.children[part] {
                guard child.kind == .directory else {
                    throw EROFSError(.unsafePath, "entry \(entry): path goes through \(child.kind == .symlink ? "symlink" : "non-directory") '\(String(decoding: part, as: UTF8.self))'")
                }
                child.touchedLayer = layer
                dir = child
            } else {
                guard create else { return nil }
                let node = Node(kind: .directory, permissions: 0o755, uid: 0, gid: 0, mtime: options.fixedTimestamp ?? 0, mtimeNsec: 0)
                node.implicit = true
                node.layer = layer
                node.touchedLayer = layer
                dir.children[part] = node
                dir = node
            }
        }
        return dir
    }

    private func apply(_ entry: TarEntry, from tar: TarReader, layer: Int, whiteouts: EROFSWhiteoutMode) throws {
        let display = entry.displayPath
        let parts = try components(entry.path, entry: display)
        guard let name = parts.last else {
            // The root directory itself ("./").
            guard entry.type == 0x35 else { throw EROFSError(.unsafePath, "entry \(display): only a directory can be the root") }
            if root.layer == layer && !root.implicit { throw EROFSError(.duplicateEntry, "entry \(display): root directory appears twice") }
            setMetadata(root, entry)
            root.implicit = false
            root.layer = layer
            return
        }
        let whiteoutPrefix = Array(".wh.".utf8)
        if name.starts(with: whiteoutPrefix) {
            let target = Array(name.dropFirst(whiteoutPrefix.count))
            guard let dir = try parentDirectory(parts.dropLast(), entry: display, create: whiteouts == .overlay, layer: layer) else { return }
            if target == Array(".wh..opq".utf8) {
                switch whiteouts {
                case .overlay:
                    dir.xattrs.removeAll { $0.index == EROFSFormat.xattrTrusted && $0.name == Array("overlay.opaque".utf8) }
                    dir.xattrs.append(Xattr(index: EROFSFormat.xattrTrusted, name: Array("overlay.opaque".utf8), value: [0x79]))
                    dir.xattrs.sort()
                case .apply:
                    Self.hideLowerLayers(in: dir, layer: layer)
                }
                return
            }
            if target.starts(with: whiteoutPrefix) { return }   // other .wh..wh. metadata: not content
            guard !target.isEmpty, target != [0x2E], target != [0x2E, 0x2E] else {
                throw EROFSError(.unsafePath, "entry \(display): bad whiteout name")
            }
            switch whiteouts {
            case .overlay:
                if let existing = dir.children[target], existing.layer == layer {
                    throw EROFSError(.duplicateEntry, "entry \(display): whiteout for an entry of the same layer")
                }
                let node = Node(kind: .charDevice, permissions: 0, uid: entry.uid, gid: entry.gid, mtime: entry.mtime, mtimeNsec: entry.mtimeNsec)
                applyTimestamp(node)
                node.layer = layer
                dir.children[target] = node
            case .apply:
                if let existing = dir.children[target], existing.layer < layer { dir.children[target] = nil }
            }
            return
        }

        let dir = try parentDirectory(parts.dropLast(), entry: display, create: true, layer: layer) ?? root
        let existing = dir.children[name]
        if let existing, existing.layer == layer, !existing.implicit {
            throw EROFSError(.duplicateEntry, "entry \(display): appears twice in the layer")
        }
        let kind: Node.Kind
        switch entry.type {
        case 0x30, 0x37: kind = .regular
        case 0x31:
            let targetParts = try components(entry.linkName, entry: display + " (hardlink target)")
            guard let targetName = targetParts.last,
                  let targetDir = try parentDirectory(targetParts.dropLast(), entry: display + " (hardlink target)", create: false, layer: layer),
                  let target = targetDir.children[targetName] else {
                throw EROFSError(.unsafePath, "entry \(display): hardlink to '\(String(decoding: entry.linkName, as: UTF8.self))' which is not in the image")
            }
            guard target.kind != .directory else { throw EROFSError(.unsafePath, "entry \(display): hardlink to a directory") }
            guard target !== existing else { return }
            dir.children[name] = target
            target.layer = layer
            return
        case 0x32: kind = .symlink
        case 0x33: kind = .charDevice
        case 0x34: kind = .blockDevice
        case 0x35: kind = .directory
        case 0x36: kind = .fifo
        default:
            throw EROFSError(.unsupported, "entry \(display): tar entry type '\(String(UnicodeScalar(entry.type)))' not supported")
        }
        if kind == .directory, let existing, existing.kind == .directory {
            setMetadata(existing, entry)
            existing.implicit = false
            existing.layer = layer
            return
        }
        let node = Node(kind: kind, permissions: 0, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0)
        setMetadata(node, entry)
        node.layer = layer
        switch kind {
        case .symlink:
            guard !entry.linkName.isEmpty, entry.linkName.count < 4096 else {
                throw EROFSError(.unsupported, "entry \(display): symlink target empty or too long")
            }
            node.symlinkTarget = entry.linkName
            node.size = UInt64(entry.linkName.count)
        case .charDevice, .blockDevice:
            node.rdev = EROFSFormat.encodeDevice(major: entry.devMajor & 0xFFF, minor: entry.devMinor & 0xFFFFF)
        case .regular:
            let source: any FileSource
            if entry.sparse == nil && entry.storedSize <= UInt64(options.tarLimits.memoryBufferedFileSize) {
                var bytes = [UInt8](repeating: 0, count: Int(entry.storedSize))
                let n = try bytes.withUnsafeMutableBytes { try tar.readData(into: $0, entry: display) }
                guard n == bytes.count else { throw EROFSError(.corruptTar, "entry \(display): data truncated") }
                source = MemoryFileSource(bytes: bytes, displayName: display)
            } else {
                source = TarFileSource(tar: tar, entry: entry)
            }
            try storeData(node, from: source)
            guard tar.remaining == 0 else {
                throw EROFSError(.corruptTar, "entry \(display): \(tar.remaining) stored bytes not accounted for")
            }
        default:
            break
        }
        dir.children[name] = node
    }

    /// An opaque directory in `layer`: drop what lower layers put below it, but keep
    /// what this layer added (also when it came earlier in the stream, inside a
    /// lower-layer subdirectory).
    static func hideLowerLayers(in dir: Node, layer: Int) {
        dir.children = dir.children.filter { _, child in
            if child.layer == layer || (child.kind == .directory && child.touchedLayer == layer) {
                if child.kind == .directory { hideLowerLayers(in: child, layer: layer) }
                return true
            }
            return false
        }
    }

    private func setMetadata(_ node: Node, _ entry: TarEntry) {
        node.permissions = UInt16(entry.mode & 0o7777)
        node.uid = entry.uid
        node.gid = entry.gid
        node.mtime = entry.mtime
        node.mtimeNsec = entry.mtimeNsec
        applyTimestamp(node)
        var xattrs: [Xattr] = []
        for (name, value) in entry.xattrs {
            guard let (index, suffix) = Xattr.split(name), suffix.count <= 255, value.count <= 65535 else { continue }
            xattrs.append(Xattr(index: index, name: suffix, value: value))
        }
        node.xattrs = xattrs.sorted()
    }
}

/// The data of a tar entry, read once, in order, straight from the stream.
final class TarFileSource: FileSource {
    let tar: TarReader
    let size: UInt64
    let dataSegments: [Range<UInt64>]?
    let displayName: String
    var rewindable: Bool { false }
    /// Logical offset up to which the stream has been consumed.
    private var logical: UInt64 = 0
    private var segmentIndex = 0
    private var segmentConsumed: UInt64 = 0

    init(tar: TarReader, entry: TarEntry) {
        self.tar = tar
        size = entry.size
        dataSegments = entry.sparse.map { $0.filter { !$0.isEmpty } }
        displayName = entry.displayPath
    }

    func read(at offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset >= logical else { throw EROFSError(.invalidState, "\(displayName): tar data read backwards") }
        let end = min(size, offset + UInt64(buffer.count))
        guard offset < end, let base = buffer.baseAddress else { return 0 }
        guard let segments = dataSegments else {
            // Dense: skip forward if needed, then read.
            if offset > logical { try discard(offset - logical) }
            var done = 0
            while done < Int(end - offset) {
                let n = try tar.readData(into: UnsafeMutableRawBufferPointer(start: base + done, count: Int(end - offset) - done), entry: displayName)
                guard n > 0 else { throw EROFSError(.corruptTar, "entry \(displayName): data truncated") }
                done += n
            }
            logical = end
            return done
        }
        // Sparse: zeros in holes, stream bytes in data segments.
        base.initializeMemory(as: UInt8.self, repeating: 0, count: Int(end - offset))
        try advanceStream(to: offset, segments)
        while segmentIndex < segments.count, segments[segmentIndex].lowerBound < end {
            let seg = segments[segmentIndex]
            let from = max(seg.lowerBound + segmentConsumed, offset)
            let to = min(seg.upperBound, end)
            if from < to {
                var done = 0
                let count = Int(to - from)
                while done < count {
                    let n = try tar.readData(into: UnsafeMutableRawBufferPointer(start: base + Int(from - offset) + done, count: count - done), entry: displayName)
                    guard n > 0 else { throw EROFSError(.corruptTar, "entry \(displayName): data truncated") }
                    done += n
                }
                segmentConsumed = to - seg.lowerBound
            }
            if seg.lowerBound + segmentConsumed >= seg.upperBound {
                segmentIndex += 1
                segmentConsumed = 0
            } else {
                break
            }
        }
        logical = end
        return Int(end - offset)
    }

    /// Consumes (drops) stored bytes of every data segment below logical offset `target`.
    private func advanceStream(to target: UInt64, _ segments: [Range<UInt64>]) throws {
        while segmentIndex < segments.count {
            let seg = segments[segmentIndex]
            let consumedEnd = seg.lowerBound + segmentConsumed
            if seg.upperBound <= target {
                try discard(seg.upperBound - consumedEnd)
                segmentIndex += 1
                segmentConsumed = 0
            } else if seg.lowerBound < target && consumedEnd < target {
                try discard(target - consumedEnd)
                segmentConsumed = target - seg.lowerBound
                break
            } else {
                break
            }
        }
    }

    private func discard(_ count: UInt64) throws {
        if count == 0 { return }
        var remaining = count
        var scratch = [UInt8](repeating: 0, count: 65536)
        while remaining > 0 {
            let n = try scratch.withUnsafeMutableBytes {
                try tar.readData(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<Int(min(remaining, 65536))]), entry: displayName)
            }
            guard n > 0 else { throw EROFSError(.corruptTar, "entry \(displayName): data truncated") }
            remaining -= UInt64(n)
        }
    }
}
