#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The files that processes on this host hold open, by device and inode, from the
/// `/proc/PID/fd` links of every process (root sees them all) and, on request, their memory
/// mappings (`/proc/PID/maps`: a restored VM maps its template's RAM file and need not keep a
/// descriptor). Identity, not path, is what counts: a jailed QEMU opened its files in a mount
/// namespace of its own, where paths differ.
struct OpenFiles: Sendable {
    /// Who holds a file: pid and command name.
    struct Holder: Sendable, Hashable, Codable {
        var pid: Int32
        var command: String
    }

    private var holders: [FileIdentity: [Holder]] = [:]
    /// The subset of ``holders`` that map the file (`/proc/PID/maps`).
    private var mappers: [FileIdentity: [Holder]] = [:]
    /// What each process holds through a descriptor, and the link target it showed.
    private var descriptors: [Holder: [(identity: FileIdentity, target: String)]] = [:]

    /// Scans `/proc`, looking only at descriptors whose link target passes `interesting`
    /// (e.g. contains `.erofs`), so that sockets and pipes cost nothing.
    static func scan(procRoot: String = "/proc", mappings: Bool = false, interesting: (String) -> Bool) -> OpenFiles {
        var table = OpenFiles()
        let fm = FileManager.default
        for entry in (try? fm.contentsOfDirectory(atPath: procRoot)) ?? [] {
            guard let pid = Int32(entry) else { continue }
            let fdDirectory = "\(procRoot)/\(pid)/fd"
            var command: String?
            @discardableResult
            func add(_ identity: FileIdentity, mapped: Bool) -> Holder {
                if command == nil {
                    command = ProcFile.text("\(procRoot)/\(pid)/comm")?
                        .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                }
                let holder = Holder(pid: pid, command: command ?? "?")
                if mapped, table.mappers[identity]?.contains(holder) != true {
                    table.mappers[identity, default: []].append(holder)
                }
                if table.holders[identity]?.contains(holder) != true {
                    table.holders[identity, default: []].append(holder)
                }
                return holder
            }
            if mappings, let maps = ProcFile.text("\(procRoot)/\(pid)/maps") {
                // start-end perms offset MAJ:MIN inode path
                for line in maps.split(separator: "\n") {
                    let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                    // The path column is padded with spaces, which the split leaves on it.
                    guard fields.count == 6, interesting(String(fields[5].drop { $0 == " " })),
                          let inode = UInt64(fields[4]), inode != 0 else { continue }
                    let device = fields[3].split(separator: ":").compactMap { UInt64($0, radix: 16) }
                    guard device.count == 2 else { continue }
                    add(FileIdentity(device: Self.makeDevice(major: device[0], minor: device[1]), inode: inode), mapped: true)
                }
            }
            guard let fds = try? fm.contentsOfDirectory(atPath: fdDirectory) else { continue }
            for fd in fds {
                let link = fdDirectory + "/" + fd
                guard let target = try? fm.destinationOfSymbolicLink(atPath: link), target.hasPrefix("/"),
                      interesting(target) else { continue }
                var st = stat()
                guard stat(link, &st) == 0 else { continue }
                let identity = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
                table.descriptors[add(identity, mapped: false), default: []].append((identity, target))
            }
        }
        return table
    }

    /// glibc's `makedev`: the `st_dev` of a `MAJ:MIN` pair.
    static func makeDevice(major: UInt64, minor: UInt64) -> UInt64 {
        (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
    }

    /// The processes mapping the file `identity` (`/proc/PID/maps`).
    func mappers(of identity: FileIdentity) -> [Holder] {
        mappers[identity] ?? []
    }

    /// The processes holding, through descriptors, files whose link target passes
    /// `matching`, with those files.
    func descriptorHolders(matching: (String) -> Bool) -> [(holder: Holder, files: [FileIdentity])] {
        descriptors.compactMap { holder, held in
            let files = held.filter { matching($0.target) }.map(\.identity)
            return files.isEmpty ? nil : (holder, files)
        }
    }

    /// The processes holding `path` open (empty when none, or when `path` does not exist).
    func holders(of path: String) -> [Holder] {
        var st = stat()
        guard stat(path, &st) == 0 else { return [] }
        return holders[FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))] ?? []
    }
}

/// Reading `/proc` files whole: they report size 0 and come one page per `read`, so a reader
/// that trusts the size (or stops after one read) sees only their first 4 KiB.
enum ProcFile {
    /// The whole file, nil if it cannot be opened (at most 16 MiB).
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while bytes.count < 16 << 20 {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            bytes += buffer[0..<n]
        }
        return bytes
    }

    /// The whole file as text.
    static func text(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }
}
