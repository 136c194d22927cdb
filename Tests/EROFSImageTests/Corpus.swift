import CEROFSSupport
import Foundation
import Glibc

/// Builds the varied test corpus: every file type, unicode and long names, a big
/// directory, a 1 GiB sparse file, a deep tree, empty files, xattrs of every
/// namespace and hardlink groups, with explicit owners, modes and mtimes.
enum Corpus {
    struct Options {
        var bigDirectoryEntries = 20_000
        var sparseSize = 1 << 30
        var depth = 64
        /// Sockets, POSIX ACLs and hardlinked fifos do not survive GNU tar; layer tests leave them out.
        var socketsAndACLs = true
    }

    static func build(at root: String, options: Options = Options()) throws {
        var rng = SeededBytes(state: 0x9E37_79B9_7F4A_7C15)
        let fm = FileManager.default
        func mkdir(_ path: String, _ mode: mode_t = 0o755) throws {
            guard Glibc.mkdir(root + "/" + path, mode) == 0 else { throw Host.Failure(description: "mkdir \(path): \(errno)") }
            _ = chmod(root + "/" + path, mode)
        }
        func file(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
            try Host.writeFile(root + "/" + path, bytes, mode: mode)
        }
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)

        // Regular files of many shapes.
        try file("empty", [])
        try file("small.txt", Array("hello, erofs\n".utf8))
        try file("exact-block", rng.random(4096))
        try file("text.txt", rng.text(200_000))
        try file("random.bin", rng.random(300_000))
        try file("mixed.bin", rng.text(100_000) + rng.random(50_000) + rng.text(70_001))
        try file("big.txt", rng.text(3_000_000 + 17))
        try file("almost-block", rng.text(4000))
        try file("zeros", [UInt8](repeating: 0, count: 2_000_000))
        try file("setuid", rng.text(5000), mode: 0o4755)
        try file("setgid-sticky", Array("x".utf8), mode: 0o3711)
        try file("no-perms", Array("secret".utf8), mode: 0)

        // Names.
        try file("héllo wörld ✓.txt", Array("unicode".utf8))
        try file("日本語のファイル名", rng.text(9000))
        try file("emoji-🙂🚀", [])
        try file(String(repeating: "n", count: 255), Array("longest name".utf8))
        try file(String(repeating: "é", count: 127) + "x", Array("long multibyte name".utf8))
        try file("name with spaces and 'quotes'", [])
        try file("!first", [])
        try file("~last", [])

        // Special files.
        try mkdir("special")
        guard mkfifo(root + "/special/fifo", 0o640) == 0 else { throw Host.Failure(description: "mkfifo") }
        guard mknod(root + "/special/null", S_IFCHR | 0o666, dev_t(cerofs_makedev(1, 3))) == 0,
              mknod(root + "/special/loop0", S_IFBLK | 0o660, dev_t(cerofs_makedev(7, 0))) == 0,
              mknod(root + "/special/bigminor", S_IFCHR | 0o600, dev_t(cerofs_makedev(259, 65541))) == 0,
              mknod(root + "/special/whiteout", S_IFCHR, dev_t(cerofs_makedev(0, 0))) == 0 else {
            throw Host.Failure(description: "mknod: \(errno)")
        }
        if options.socketsAndACLs { try makeSocket(root + "/special/sock") }

        // Symlinks.
        try mkdir("links")
        for (name, target) in [("short", "../small.txt"), ("dangling", "does/not/exist"), ("dir", "../special"),
                               ("absolute", "/etc/passwd"), ("long", String(repeating: "abcdefghij/", count: 150) + "end")] {
            guard symlink(target, root + "/links/" + name) == 0 else { throw Host.Failure(description: "symlink \(name)") }
        }

        // Hardlink groups (across directories).
        try mkdir("hard")
        try mkdir("hard/other")
        try file("hard/one", rng.text(20_000))
        link(root + "/hard/one", root + "/hard/two")
        link(root + "/hard/one", root + "/hard/other/three")
        try file("hard/pair", Array("tiny".utf8))
        link(root + "/hard/pair", root + "/hard/other/pair-too")
        if options.socketsAndACLs { link(root + "/special/fifo", root + "/hard/fifo-link") }

        // Xattrs: user, trusted (overlay), security (capability), POSIX ACLs, shared ones.
        try mkdir("xattrs")
        try mkdir("xattrs/opaque")
        try file("xattrs/opaque/inside", [])
        try Host.setXattr(root + "/xattrs/opaque", "trusted.overlay.opaque", Array("y".utf8))
        try Host.setXattr(root + "/xattrs", "trusted.overlay.redirect", Array("/elsewhere".utf8))
        try file("xattrs/cap", rng.text(100), mode: 0o755)
        // vfs_cap_data v2: magic 0x02000001 (effective), permitted = CAP_NET_BIND_SERVICE.
        try Host.setXattr(root + "/xattrs/cap", "security.capability",
                          [0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        if options.socketsAndACLs {
            try file("xattrs/acl", [])
            try Host.setXattr(root + "/xattrs/acl", "system.posix_acl_access", posixACL(namedUser: 1234, withMask: true))
            try mkdir("xattrs/acl-dir")
            try Host.setXattr(root + "/xattrs/acl-dir", "system.posix_acl_default", posixACL(namedUser: 42, withMask: true))
        }
        try file("xattrs/big-value", [])
        try Host.setXattr(root + "/xattrs/big-value", "user.big", rng.text(3000))
        for i in 0..<40 {
            try file("xattrs/shared-\(i)", Array("\(i)".utf8))
            try Host.setXattr(root + "/xattrs/shared-\(i)", "user.common", Array("same value for all".utf8))
            try Host.setXattr(root + "/xattrs/shared-\(i)", "user.mime_type", Array("text/plain".utf8))
            try Host.setXattr(root + "/xattrs/shared-\(i)", "user.own", Array("value \(i)".utf8))
        }
        try Host.setXattr(root + "/small.txt", "user.comment", Array("a comment".utf8))
        try Host.setXattr(root + "/text.txt", "user.empty", [])

        // A big directory.
        try mkdir("bigdir")
        for i in 0..<options.bigDirectoryEntries {
            let fd = open(root + "/bigdir/entry-\(String(format: "%05d", i))-with-a-reasonably-long-name", O_WRONLY | O_CREAT, 0o644)
            guard fd >= 0 else { throw Host.Failure(description: "create bigdir entry \(i)") }
            if i % 1000 == 0 { _ = "x\(i)".withCString { write(fd, $0, strlen($0)) } }
            close(fd)
        }

        // A deep tree.
        var deep = "deep"
        try mkdir(deep)
        for level in 1..<options.depth {
            deep += "/d\(level)"
            try mkdir(deep)
        }
        try file(deep + "/bottom", Array("at the bottom".utf8))

        // A sparse file with a few islands of data.
        let sparse = root + "/sparse-1g"
        try file("sparse-1g", [])
        guard truncate(sparse, off_t(options.sparseSize)) == 0 else { throw Host.Failure(description: "truncate") }
        try Host.pwriteAt(sparse, rng.random(10_000), offset: 0)
        try Host.pwriteAt(sparse, rng.text(70_000), offset: options.sparseSize / 3 + 123)
        try Host.pwriteAt(sparse, Array("the end".utf8), offset: options.sparseSize - 7)

        // Owners and times, applied depth-first so directory mtimes stick.
        var index = 0
        var paths: [String] = []
        let enumerator = fm.enumerator(atPath: root)
        while let path = enumerator?.nextObject() as? String { paths.append(path) }
        for path in paths.sorted(by: { $0.count > $1.count }) + [""] {
            let full = path.isEmpty ? root : root + "/" + path
            index += 1
            let owners: [(uid_t, gid_t)] = [(0, 0), (1000, 1000), (70_000, 70_001), (65_534, 100)]
            let (uid, gid) = owners[index % owners.count]
            if !path.hasPrefix("bigdir/") {
                let before = try Host.lstatOrThrow(full)
                _ = lchown(full, uid, gid)
                if before.st_mode & S_IFMT != S_IFLNK { _ = chmod(full, before.st_mode & 0o7777) }
            }
            let times: [(Int, Int)] = [(1_700_000_000, 0), (1_600_000_000, 123_456_789), (0, 0),
                                       (4_102_444_800, 999_999_999), (1_700_000_000, 0), (-1000, 5)]
            let (sec, nsec) = path.hasPrefix("bigdir/") ? (1_700_000_000, 0) : times[index % times.count]
            try Host.setTimes(full, sec: sec, nsec: nsec)
        }
    }

    static func makeSocket(_ path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Host.Failure(description: "socket") }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw Host.Failure(description: "socket path too long") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw Host.Failure(description: "bind \(path): \(errno)") }
    }

    /// A POSIX ACL in xattr form: owner rw, a named user r, group r, mask r, other none.
    static func posixACL(namedUser: UInt32, withMask: Bool) -> [UInt8] {
        var out: [UInt8] = []
        func u16(_ v: UInt16) { out += [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: UInt32) { for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((v >> UInt32(s)) & 0xFF)) } }
        u32(2)                                   // POSIX_ACL_XATTR_VERSION
        u16(0x01); u16(6); u32(0xFFFF_FFFF)      // USER_OBJ rw
        u16(0x02); u16(4); u32(namedUser)        // USER r
        u16(0x04); u16(4); u32(0xFFFF_FFFF)      // GROUP_OBJ r
        if withMask { u16(0x10); u16(4); u32(0xFFFF_FFFF) }   // MASK r
        u16(0x20); u16(0); u32(0xFFFF_FFFF)      // OTHER none
        return out
    }
}
