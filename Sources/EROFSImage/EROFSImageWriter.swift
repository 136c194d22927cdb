import CEROFSSupport
import Foundation
import Glibc

/// Writes an EROFS image: add one directory tree or one or more OCI layer tars,
/// then `finish()`.
///
/// File data is streamed into the image as it is added; only per-inode metadata
/// stays in memory. Not thread-safe: use one writer from one thread.
public final class EROFSImageWriter {
    /// The options in force.
    public let options: EROFSWriterOptions
    let output: ImageOutput
    let tails: TailStore
    let data: DataWriter
    let root: Node
    var finished = false
    var failed = false
    var entriesAdded = 0
    var dataBytes: UInt64 = 0
    var compressedFiles = 0
    var layerCount = 0
    let pipeline: CompressionPipeline?
    /// Regular files found by the directory scan, waiting for their data pass.
    var scanFiles: [(node: Node, path: [UInt8], size: UInt64, allocated: UInt64)] = []
    /// The build time promised to inodes whose tails were inlined as compact ones.
    var pinnedBuildTime: (sec: Int64, nsec: UInt32)?
    var pending: [(node: Node, job: CompressionPipeline.Job, budget: Int)] = []
    var pendingHead = 0
    var pendingBytes: UInt64 = 0
    /// Called after each entry with the running totals.
    public var progress: ((EROFSProgress) -> Void)?

    /// Creates (truncates) the image file at `path`.
    public init(path: String, options: EROFSWriterOptions = EROFSWriterOptions()) throws {
        guard options.uuid.count == 16 else { throw EROFSError(.invalidArgument, "uuid must be 16 bytes") }
        guard options.volumeName.utf8.count <= 16 else { throw EROFSError(.invalidArgument, "volume name longer than 16 bytes") }
        guard (8192...(4 << 20)).contains(options.maxExtentBytes) else {
            throw EROFSError(.invalidArgument, "maxExtentBytes must be within 8 KiB...4 MiB")
        }
        if case .lz4hc(let level) = options.compression, !(1...12).contains(level) {
            throw EROFSError(.invalidArgument, "lz4hc level must be 1...12")
        }
        self.options = options
        output = try ImageOutput(path: path)
        let dir = options.temporaryDirectory ?? Self.directoryOf(path)
        tails = try TailStore(directory: dir)
        data = DataWriter(output: output, tails: tails, compression: options.compression, maxExtentBytes: options.maxExtentBytes)
        let threads = options.compressionThreads ?? ProcessInfo.processInfo.activeProcessorCount
        pipeline = options.compression == .none || threads < 1 ? nil
            : CompressionPipeline(threads: threads, maxPendingBytes: 64 << 20)
        root = Node(kind: .directory, permissions: 0o755, uid: 0, gid: 0, mtime: options.fixedTimestamp ?? 0, mtimeNsec: 0)
        root.implicit = true
        // Block 0 holds the superblock at 1024; data starts at block 1.
        try output.writeZeros(EROFSFormat.blockSize)
    }

    static func directoryOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let dir = String(path[..<slash])
        return dir.isEmpty ? "/" : dir
    }

    func checkUsable() throws {
        if finished { throw EROFSError(.invalidState, "writer already finished") }
        if failed { throw EROFSError(.invalidState, "writer failed earlier; start a new image") }
    }

    func reportProgress(inputBytes: UInt64? = nil, inputTotal: UInt64? = nil) {
        guard let progress else { return }
        progress(EROFSProgress(entries: entriesAdded, dataBytes: dataBytes, inputBytes: inputBytes, inputTotal: inputTotal))
    }

    /// Budget of tail bytes that may be inlined next to an inode with `xattrs`.
    func inlineBudget(for node: Node) -> Int {
        max(0, EROFSFormat.blockSize - EROFSFormat.extendedInodeSize - node.fullInlineXattrSize)
    }

    /// Stores a regular file's data and records the layout in `node`.
    func storeData(_ node: Node, from source: any FileSource, budget: Int? = nil) throws {
        let budget = budget ?? inlineBudget(for: node)
        node.size = source.size
        dataBytes += source.size
        if let pipeline, data.canCompressAsync(source) {
            let job = CompressionPipeline.Job(source: source, compression: options.compression, maxExtentBytes: options.maxExtentBytes)
            pipeline.submit(job)
            pending.append((node, job, budget))
            pendingBytes += source.size
            while pendingBytes > pipeline.maxPendingBytes || pending.count - pendingHead > 256 {
                try commitOldest()
            }
            return
        }
        // Everything else is written in order, after what is still in flight.
        try drainPending()
        node.data = try data.write(source, inlineBudget: budget)
        if case .compressed = node.data { compressedFiles += 1 }
    }

    private func commitOldest() throws {
        let item = pending[pendingHead]
        pendingHead += 1
        pendingBytes -= item.node.size
        let (outcome, blocks) = try item.job.wait()
        item.node.data = try data.commit(outcome, blocks: blocks, source: item.job.source, inlineBudget: item.budget)
        if case .compressed = item.node.data { compressedFiles += 1 }
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
        }
    }

    /// Commits every file still being compressed, in order.
    func drainPending() throws {
        while pendingHead < pending.count { try commitOldest() }
    }

    func applyTimestamp(_ node: Node) {
        if let fixed = options.fixedTimestamp {
            node.mtime = fixed
            node.mtimeNsec = 0
        }
    }

    // MARK: directories

    /// Adds the tree at `path` as the image root (its own metadata becomes the
    /// root directory's). Hardlinks inside the tree are kept as hardlinks.
    public func addDirectory(_ path: String) throws {
        try checkUsable()
        do {
            var st = stat()
            guard lstat(path, &st) == 0 else { throw EROFSError.errno("lstat \(path)") }
            guard (st.st_mode & S_IFMT) == S_IFDIR else { throw EROFSError(.invalidArgument, "\(path) is not a directory") }
            fill(root, from: st)
            root.implicit = false
            root.xattrs = try readXattrs(Array(path.utf8))
            // Pass 1: the whole tree's metadata, so that every inode's final size
            // is known before its data (and inline tail) is written.
            var links: [HardlinkKey: Node] = [:]
            scanFiles = []
            try scan(directory: Array(path.utf8), into: root, links: &links)
            let budgets = predictInlineBudgets()
            // Pass 2: file data, in walk order.
            let files = scanFiles
            scanFiles = []
            let total = files.reduce(UInt64(0)) { $0 + $1.size }
            var done: UInt64 = 0
            for (index, file) in files.enumerated() {
                let source = try HostFileSource(path: file.path, size: file.size, allocatedBytes: file.allocated)
                try storeData(file.node, from: source, budget: budgets[index])
                done += file.size
                reportProgress(inputBytes: done, inputTotal: total)
            }
        } catch {
            failed = true
            throw error
        }
    }

    struct HardlinkKey: Hashable {
        var dev: UInt64
        var ino: UInt64
    }

    func fill(_ node: Node, from st: stat) {
        node.permissions = UInt16(st.st_mode & 0o7777)
        node.uid = st.st_uid
        node.gid = st.st_gid
        node.mtime = Int64(st.st_mtim.tv_sec)
        node.mtimeNsec = UInt32(st.st_mtim.tv_nsec)
        applyTimestamp(node)
    }

    private func scan(directory: [UInt8], into dirNode: Node, links: inout [HardlinkKey: Node]) throws {
        guard let dir = withCPath(directory, { opendir($0) }) else {
            throw EROFSError.errno("opendir \(String(decoding: directory, as: UTF8.self))")
        }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> [UInt8] in
                let bytes = raw.bindMemory(to: UInt8.self)
                let len = bytes.firstIndex(of: 0) ?? bytes.count
                return Array(bytes[0..<len])
            }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        closedir(dir)
        names.sort { $0.lexicographicallyPrecedes($1) }
        for name in names {
            let pathBytes = directory + [0x2F] + name
            let childPath = String(decoding: pathBytes, as: UTF8.self)
            try addHostEntry(name: name, path: childPath, pathBytes: pathBytes, parent: dirNode, links: &links)
        }
    }

    private func addHostEntry(name: [UInt8], path: String, pathBytes: [UInt8], parent: Node,
                              links: inout [HardlinkKey: Node]) throws {
        guard name.count <= 255 else { throw EROFSError(.unsupported, "\(path): name longer than 255 bytes") }
        var st = stat()
        let rc = withCPath(pathBytes) { lstat($0, &st) }
        guard rc == 0 else { throw EROFSError.errno("lstat \(path)") }
        let type = st.st_mode & S_IFMT
        if type != S_IFDIR, st.st_nlink > 1 {
            let key = HardlinkKey(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
            if let existing = links[key] {
                parent.children[name] = existing
                entriesAdded += 1
                return
            }
        }
        let kind: Node.Kind
        switch type {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symlink
        case S_IFCHR: kind = .charDevice
        case S_IFBLK: kind = .blockDevice
        case S_IFIFO: kind = .fifo
        case S_IFSOCK: kind = .socket
        default: throw EROFSError(.unsupported, "\(path): unknown file type \(type)")
        }
        let node = Node(kind: kind, permissions: 0, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0)
        fill(node, from: st)
        node.xattrs = try readXattrs(pathBytes)
        parent.children[name] = node
        entriesAdded += 1
        switch kind {
        case .regular:
            node.size = UInt64(st.st_size)
            scanFiles.append((node, pathBytes, UInt64(st.st_size), UInt64(st.st_blocks) * 512))
        case .directory:
            try scan(directory: pathBytes, into: node, links: &links)
        case .symlink:
            node.symlinkTarget = try readLink(pathBytes, size: Int(st.st_size))
            node.size = UInt64(node.symlinkTarget.count)
        case .charDevice, .blockDevice:
            let dev = UInt64(st.st_rdev)
            let major = UInt32(truncatingIfNeeded: ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF))
            let minor = UInt32(truncatingIfNeeded: (dev & 0xFF) | ((dev >> 12) & ~0xFF))
            node.rdev = EROFSFormat.encodeDevice(major: major, minor: minor)
        case .fifo, .socket:
            break
        }
        if type != S_IFDIR, st.st_nlink > 1 {
            links[HardlinkKey(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))] = node
        }
        if kind != .regular { reportProgress() }
    }

    private func readLink(_ pathBytes: [UInt8], size: Int) throws -> [UInt8] {
        let path = String(decoding: pathBytes, as: UTF8.self)
        var buf = [CChar](repeating: 0, count: max(size, 4096) + 1)
        let n = withCPath(pathBytes) { readlink($0, &buf, buf.count) }
        guard n >= 0 else { throw EROFSError.errno("readlink \(path)") }
        guard n < 4096 else { throw EROFSError(.unsupported, "\(path): symlink target too long") }
        return buf[0..<n].map { UInt8(bitPattern: $0) }
    }

    private func readXattrs(_ pathBytes: [UInt8]) throws -> [Xattr] {
        let path = String(decoding: pathBytes, as: UTF8.self)
        var size = withCPath(pathBytes) { llistxattr($0, nil, 0) }
        if size < 0 {
            if errno == ENOTSUP || errno == ENODATA { return [] }
            throw EROFSError.errno("llistxattr \(path)")
        }
        if size == 0 { return [] }
        var list = [CChar](repeating: 0, count: size)
        size = withCPath(pathBytes) { llistxattr($0, &list, size) }
        guard size >= 0 else { throw EROFSError.errno("llistxattr \(path)") }
        var result: [Xattr] = []
        var start = 0
        let bytes = list.map { UInt8(bitPattern: $0) }
        for i in 0..<size where bytes[i] == 0 {
            let name = Array(bytes[start..<i])
            start = i + 1
            guard !name.isEmpty, let (index, suffix) = Xattr.split(name) else { continue }
            let nameString = String(decoding: name, as: UTF8.self)
            var vsize = withCPath(pathBytes) { lgetxattr($0, nameString, nil, 0) }
            if vsize < 0 { if errno == ENODATA { continue }; throw EROFSError.errno("lgetxattr \(path) \(nameString)") }
            var value = [UInt8](repeating: 0, count: vsize)
            vsize = value.withUnsafeMutableBytes { v in withCPath(pathBytes) { lgetxattr($0, nameString, v.baseAddress, vsize) } }
            guard vsize >= 0 else { throw EROFSError.errno("lgetxattr \(path) \(nameString)") }
            value.removeSubrange(vsize...)
            guard suffix.count <= 255, value.count <= 65535 else {
                throw EROFSError(.unsupported, "\(path): xattr \(nameString) too large")
            }
            result.append(Xattr(index: index, name: suffix, value: value))
        }
        return result.sorted()
    }
}

/// Calls `body` with `bytes` as a NUL-terminated C path (names need not be UTF-8).
func withCPath<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) throws -> T) rethrows -> T {
    var cstr = bytes.map { CChar(bitPattern: $0) }
    cstr.append(0)
    return try cstr.withUnsafeBufferPointer { try body($0.baseAddress!) }
}
