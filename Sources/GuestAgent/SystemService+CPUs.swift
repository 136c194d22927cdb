#if canImport(Glibc)
import Glibc
#endif
import CGuestAgentSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import QemuboxAPI
import TTRPCCodec

/// CPUs the host adds while the VM runs: ACPI tells the kernel, which makes them
/// present but leaves them offline until user space onlines them.
extension SystemService {
    /// The longest `OnlineCPUs` waits, whatever the host asks.
    static let maxOnlineWait: Duration = .seconds(30)

    public func onlineCPUs(_ request: Qemubox_Guest_V1_OnlineCPUsRequest, context: TTRPCRequestContext) async throws
        -> Qemubox_Guest_V1_OnlineCPUsResponse
    {
        let wanted = Int(request.presentCpus)
        let wait = min(.milliseconds(Int(request.timeoutMs)), Self.maxOnlineWait)
        return try await Blocking.run { try CPUHotplug.online(presentAtLeast: wanted, wait: wait) }
    }
}

/// The guest's view of its CPUs under `/sys/devices/system/cpu`.
enum CPUHotplug {
    static let root = "/sys/devices/system/cpu"

    /// Waits until `presentAtLeast` CPUs are present (up to `wait`), onlining each
    /// present CPU that is offline as it appears.
    static func online(presentAtLeast wanted: Int, wait: Duration, root: String = root) throws
        -> Qemubox_Guest_V1_OnlineCPUsResponse
    {
        var failure: String?
        let present = Uevents.wait(for: wait) { () -> Int? in
            let present = presentCPUs(root: root)
            for cpu in present {
                let path = "\(root)/cpu\(cpu)/online"
                // cpu0 (and any CPU the kernel cannot offline) has no `online` file.
                guard let state = try? String(contentsOfFile: path, encoding: .utf8), state.hasPrefix("0") else { continue }
                let fd = open(path, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    failure = "open \(path): \(String(cString: strerror(errno)))"
                    continue
                }
                if write(fd, "1", 1) != 1 { failure = "online cpu\(cpu): \(String(cString: strerror(errno)))" }
                close(fd)
            }
            return present.count >= wanted ? present.count : nil
        }
        if let failure { throw GuestAgentError(.internal, failure) }
        guard let present else {
            throw GuestAgentError(.deadlineExceeded, "\(presentCPUs(root: root).count) CPUs present after \(wait), \(wanted) expected")
        }
        var response = Qemubox_Guest_V1_OnlineCPUsResponse()
        response.presentCpus = UInt32(present)
        response.onlineCpus = UInt32(parseList((try? String(contentsOfFile: root + "/online", encoding: .utf8)) ?? "").count)
        response.memoryTotalBytes = UInt64(qb_total_memory())
        return response
    }

    /// The CPUs in `present` (a kernel cpu list such as `0-2,4`).
    static func presentCPUs(root: String) -> [Int] {
        parseList((try? String(contentsOfFile: root + "/present", encoding: .utf8)) ?? "")
    }

    /// Parses a kernel cpu list (`0-2,4\n`); malformed parts are skipped.
    static func parseList(_ text: String) -> [Int] {
        text.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }).flatMap { part -> [Int] in
            let bounds = part.split(separator: "-", maxSplits: 1).map { Int($0) }
            if bounds.count == 1, let a = bounds[0] { return [a] }
            if bounds.count == 2, let a = bounds[0], let b = bounds[1], a <= b, b - a < 4096 { return Array(a...b) }
            return []
        }
    }
}
