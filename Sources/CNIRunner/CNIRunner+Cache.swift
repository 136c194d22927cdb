import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The result cache, in libcni's layout and format: `<cacheDirectory>/results/<network>-<containerID>-<ifname>`
/// holding `{"kind":"cniCacheV1", "containerId", "config" (the conflist, base64), "ifName",
/// "networkName", "netns", "cniArgs", "capabilityArgs", "result"}`.
extension CNIRunner {
    /// One cache entry: enough to run DEL without the original configuration files.
    struct CacheEntry {
        var list: CNINetworkList
        var runtime: CNIRuntimeConfig
        var result: CNIResult?
    }

    static let maximumCacheFileSize = 4 << 20

    var resultsDirectory: String { cacheDirectory + "/results" }

    func cachePath(network: String, containerID: String, interfaceName: String) -> String {
        resultsDirectory + "/\(network)-\(containerID)-\(interfaceName)"
    }

    /// Writes the entry atomically (temporary file, fsync, rename), mode 0600.
    func writeCache(_ list: CNINetworkList, _ runtime: CNIRuntimeConfig, _ result: CNIResult) throws {
        var object: [String: CNIJSON] = [
            "kind": "cniCacheV1",
            "containerId": .string(runtime.containerID),
            "config": .string(list.serialized().base64EncodedString()),
            "ifName": .string(runtime.interfaceName),
            "networkName": .string(list.name),
            "netns": .string(runtime.networkNamespace),
        ]
        if !runtime.args.isEmpty { object["cniArgs"] = .array(runtime.args.map { .array([.string($0.0), .string($0.1)]) }) }
        if !runtime.capabilityArgs.isEmpty { object["capabilityArgs"] = .object(runtime.capabilityArgs) }
        if let raw = result.rawJSON { object["result"] = raw }
        let data = CNIJSON.object(object).serialized()

        let path = cachePath(network: list.name, containerID: runtime.containerID, interfaceName: runtime.interfaceName)
        do {
            try FileManager.default.createDirectory(atPath: resultsDirectory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw CNIError(.cache, "cannot create cache directory \(resultsDirectory): \(error.localizedDescription)")
        }
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CNIError(.cache, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var failure: Int32 = 0
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count, let base = raw.baseAddress {
                let count = write(fd, base + offset, raw.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += count
            }
        }
        if failure == 0, fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == 0, rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw CNIError(.cache, "cannot write cache entry \(path): \(String(cString: strerror(failure)))")
        }
    }

    /// Reads a cache entry; nil when there is none. Throws ``CNIError/Code/cache`` for an
    /// entry that exists but cannot be used.
    func readCache(path: String) throws -> CacheEntry? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        func fail(_ why: String) -> CNIError { CNIError(.cache, "cache entry \(path): \(why)") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw fail("unreadable") }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: Self.maximumCacheFileSize + 1) ?? Data()
        } catch {
            throw fail("unreadable: \(error.localizedDescription)")
        }
        guard data.count <= Self.maximumCacheFileSize else { throw fail("larger than \(Self.maximumCacheFileSize) bytes") }
        let object: [String: CNIJSON]
        do {
            guard let parsed = try CNIJSON.parse(data).objectValue else { throw fail("not a JSON object") }
            object = parsed
        } catch let error as CNIJSONError {
            throw fail(error.description)
        }
        guard object["kind"]?.stringValue == "cniCacheV1" else { throw fail("kind is not cniCacheV1") }
        guard let containerID = object["containerId"]?.stringValue, let interfaceName = object["ifName"]?.stringValue else {
            throw fail("no containerId/ifName")
        }
        guard let encoded = object["config"]?.stringValue, let config = Data(base64Encoded: encoded) else {
            throw fail("no base64 \"config\"")
        }
        let list: CNINetworkList
        do {
            list = try CNINetworkList.parse(config, source: "cached configuration in \(path)")
        } catch let error as CNIError {
            throw CNIError(.cache, error.message)
        }
        var args: [(String, String)] = []
        for pair in object["cniArgs"]?.arrayValue ?? [] {
            guard let items = pair.arrayValue, items.count == 2, let key = items[0].stringValue, let value = items[1].stringValue else {
                throw fail("malformed cniArgs")
            }
            args.append((key, value))
        }
        let runtime = CNIRuntimeConfig(containerID: containerID, networkNamespace: object["netns"]?.stringValue ?? "",
                                       interfaceName: interfaceName, args: args,
                                       capabilityArgs: object["capabilityArgs"]?.objectValue ?? [:])
        var result: CNIResult?
        if let raw = object["result"], raw != .null {
            do {
                result = try CNIResult.parse(raw.serialized(), source: "cached result in \(path)")
            } catch let error as CNIError {
                throw CNIError(.cache, error.message)
            }
        }
        return CacheEntry(list: list, runtime: runtime, result: result)
    }

    func removeCache(network: String, containerID: String, interfaceName: String) throws {
        let path = cachePath(network: network, containerID: containerID, interfaceName: interfaceName)
        if unlink(path) != 0, errno != ENOENT {
            throw CNIError(.cache, "cannot remove cache entry \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Paths of the cache entries for one attachment, in any network.
    func cachePaths(containerID: String, interfaceName: String) -> [String] {
        let suffix = "-\(containerID)-\(interfaceName)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: resultsDirectory)) ?? []
        return names.filter { $0.hasSuffix(suffix) }.sorted().map { resultsDirectory + "/" + $0 }
    }
}
