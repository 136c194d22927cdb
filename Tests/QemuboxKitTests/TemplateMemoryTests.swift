import Foundation
import Logging
import Testing
import TestSupport
@testable import QemuboxKit

/// A template's RAM as clones get it: a sealed memfd copy, one per template, handed out by a
/// holder over a unix socket.
struct TemplateMemoryTests {
    /// A fake template directory: a sparse 8 MiB `memory` with data at two places, `complete`.
    private static func makeTemplate(in dir: String) throws -> VMTemplate {
        let template = VMTemplate(directory: dir + "/0123456789abcdef", slots: 1)
        try FileManager.default.createDirectory(atPath: template.directory, withIntermediateDirectories: true)
        let fd = open(template.memoryPath, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(ftruncate(fd, 8 << 20) == 0)
        for (offset, text) in [(0, "kernel text"), (5 << 20, "page cache")] {
            _ = text.utf8CString.withUnsafeBufferPointer { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        }
        #expect(FileManager.default.createFile(atPath: template.directory + "/complete", contents: Data("ok\n".utf8)))
        return template
    }

    private static func bytes(_ fd: Int32, at offset: Int, count: Int) -> [UInt8] {
        var buffer = [UInt8](repeating: 0xff, count: count)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return Array(buffer[0..<max(n, 0)])
    }

    @Test("the copy has the file's contents and size, and nobody can change it")
    func sealedCopyIsReadOnlyButMapsPrivately() throws {
        try TemporaryDirectory.withSync(prefix: "qbx-tmem") { dir in
            let template = try Self.makeTemplate(in: dir)
            let fd = try TemplateMemory.sealedCopy(of: template.memoryPath)
            defer { close(fd) }
            try TemplateMemory.validate(fd, bytes: 8 << 20)
            #expect(throws: QemuboxError.self) { try TemplateMemory.validate(fd, bytes: 16 << 20) }
            #expect(Self.bytes(fd, at: 0, count: 11) == Array("kernel text".utf8))
            #expect(Self.bytes(fd, at: 5 << 20, count: 10) == Array("page cache".utf8))
            #expect(Self.bytes(fd, at: 3 << 20, count: 4) == [0, 0, 0, 0])
            // Sealed: no write, no resize, no shared writable mapping, even for root.
            #expect(pwrite(fd, "x", 1, 0) == -1 && errno == EPERM)
            #expect(ftruncate(fd, 4 << 20) == -1 && errno == EPERM)
            #expect(mmap(nil, 8 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED)
            // What a clone does: a private writable mapping; its writes stay its own.
            let mapped = try #require(mmap(nil, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0))
            #expect(mapped != MAP_FAILED)
            let page = mapped.assumingMemoryBound(to: UInt8.self)
            #expect(page[0] == UInt8(ascii: "k"))
            page[0] = UInt8(ascii: "K")
            #expect(munmap(mapped, 8 << 20) == 0)
            #expect(Self.bytes(fd, at: 0, count: 1) == [UInt8(ascii: "k")])
            // Holes stay holes: only the two written pages take memory.
            var st = stat()
            #expect(fstat(fd, &st) == 0 && st.st_blocks * 512 <= 2 * 4096 * 2, "\(st.st_blocks) blocks")
        }
    }

    @Test("in one process every start of a template gets the same copy, a template saved again a new one")
    func inProcessCopiesAreSharedAndFollowTheTemplate() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-tmem") { dir in
            let template = try Self.makeTemplate(in: dir)
            let logger = Logger(label: "test")
            let a = try await TemplateMemory.descriptor(for: template, bytes: 8 << 20, sharing: .inProcess, logger: logger)
            let b = try await TemplateMemory.descriptor(for: template, bytes: 8 << 20, sharing: .inProcess, logger: logger)
            defer { close(a); close(b) }
            #expect(Self.inode(a) == Self.inode(b))
            // Saved again: a new marker and RAM file.
            try FileManager.default.removeItem(atPath: template.directory)
            _ = try Self.makeTemplate(in: dir)
            let c = try await TemplateMemory.descriptor(for: template, bytes: 8 << 20, sharing: .inProcess, logger: logger)
            defer { close(c) }
            #expect(Self.inode(c) != Self.inode(a))
            await #expect(throws: QemuboxError.self) {
                _ = try await TemplateMemory.descriptor(for: template, bytes: 4 << 20, sharing: .inProcess, logger: logger)
            }
            TemplateMemory.forget(template.directory)
        }
    }

    private static func inode(_ fd: Int32) -> ino_t {
        var st = stat()
        return fstat(fd, &st) == 0 ? st.st_ino : 0
    }

    @Test("the holder serves one copy to every caller and leaves when its template goes")
    func holderServesOneCopyUntilTheTemplateIsRemoved() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-tmem") { dir in
            let template = try Self.makeTemplate(in: dir)
            var ready: [Int32] = [0, 0]
            #expect(pipe(&ready) == 0)
            let holder = Task.detached { [directory = template.directory, fd = ready[1]] in
                TemplateMemoryHolder.run(templateDirectory: directory, readyDescriptor: fd, idleTimeout: .seconds(60))
            }
            var line = [UInt8](repeating: 0, count: 16)
            let n = line.withUnsafeMutableBytes { read(ready[0], $0.baseAddress, 16) }
            close(ready[0])
            #expect(String(decoding: line[0..<max(n, 0)], as: UTF8.self) == "ok\n")
            let socket = template.directory + "/" + TemplateMemoryHolder.socketName
            var st = stat()
            #expect(stat(socket, &st) == 0 && st.st_mode & 0o777 == 0o600)

            let a = try TemplateMemoryHolder.receive(from: socket)
            let b = try TemplateMemoryHolder.receive(from: socket)
            defer { close(a); close(b) }
            #expect(Self.inode(a) == Self.inode(b), "two callers, one copy")
            try TemplateMemory.validate(a, bytes: 8 << 20)
            #expect(Self.bytes(b, at: 5 << 20, count: 10) == Array("page cache".utf8))

            // A second holder for the same template finds the first and leaves at once.
            var ready2: [Int32] = [0, 0]
            #expect(pipe(&ready2) == 0)
            #expect(TemplateMemoryHolder.run(templateDirectory: template.directory, readyDescriptor: ready2[1]) == 0)
            let n2 = line.withUnsafeMutableBytes { read(ready2[0], $0.baseAddress, 16) }
            close(ready2[0])
            #expect(String(decoding: line[0..<max(n2, 0)], as: UTF8.self) == "ok\n")
            #expect(Self.inode(try TemplateMemoryHolder.receive(from: socket)) == Self.inode(a))

            // Removed (as prune does): the holder notices within its poll interval and exits.
            unlink(template.directory + "/complete")
            let exited = await eventually(timeout: .seconds(10)) { stat(socket, &st) != 0 }
            #expect(exited, "the holder's socket is still there")
            #expect(await holder.value == 0)
            // The copies already handed out stay valid.
            #expect(Self.bytes(a, at: 0, count: 11) == Array("kernel text".utf8))
        }
    }

    @Test("a holder that cannot start costs only the sharing: the start gets a sealed copy of its own")
    func unavailableHolderFallsBackToACopy() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-tmem") { dir in
            let template = try Self.makeTemplate(in: dir)
            // /bin/false exits at once without writing "ok" on its readiness pipe.
            let fd = try await TemplateMemory.descriptor(for: template, bytes: 8 << 20,
                                                         sharing: .holder(executable: "/bin/false", arguments: []),
                                                         logger: Logger(label: "test"))
            defer { close(fd) }
            try TemplateMemory.validate(fd, bytes: 8 << 20)
            #expect(Self.bytes(fd, at: 0, count: 11) == Array("kernel text".utf8))
            var st = stat()
            #expect(stat(template.directory + "/" + TemplateMemoryHolder.socketName, &st) != 0, "no holder listens")
            TemplateMemory.forget(template.directory)
        }
    }

    @Test("a template that is not there is a clear error, not a hang")
    func missingTemplateFailsClearly() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-tmem") { dir in
            let template = VMTemplate(directory: dir + "/missing", slots: 1)
            await #expect(throws: QemuboxError.self) {
                _ = try await TemplateMemory.descriptor(for: template, bytes: 8 << 20, sharing: .inProcess,
                                                        logger: Logger(label: "test"))
            }
            #expect(throws: QemuboxError.self) {
                _ = try TemplateMemoryHolder.receive(from: dir + "/missing/" + TemplateMemoryHolder.socketName)
            }
        }
    }
}
