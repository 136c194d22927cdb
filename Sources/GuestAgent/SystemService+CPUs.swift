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
/// present but leaves them offline until user space onlines them. Shrinking offlines
/// CPUs (the host does not unplug them: see VirtualMachine+Resources in QemuboxKit).
extension SystemService {
    /// The longest `OnlineCPUs` waits, whatever the host asks.
    static let maxOnlineWait: Duration = .seconds(30)

    public func onlineCPUs(_ request: Qemubox_Guest_V1_OnlineCPUsRequest, context: TTRPCRequestContext) async throws
        -> Qemubox_Guest_V1_OnlineCPUsResponse
    {
        let present = Int(request.presentCpus)
        let online = request.onlineCpus == 0 ? nil : Int(request.onlineCpus)
        let wait = min(.milliseconds(Int(request.timeoutMs)), Self.maxOnlineWait)
        return try await Blocking.run { try CPUHotplug.set(online: online, presentAtLeast: present, wait: wait) }
    }
}

/// The guest's view of its CPUs under `/sys/devices/system/cpu`.
enum CPUHotplug {
    static let root = "/sys/devices/system/cpu"

    /// Waits until `presentAtLeast` CPUs are present (up to `wait`), then onlines present
    /// CPUs, lowest first, until `online` are online (nil: all) and offlines the others,
    /// highest first. CPU 0 (no `online` file) always stays.
    static func set(online wanted: Int?, presentAtLeast present: Int, wait: Duration, root: String = root) throws
        -> Qemubox_Guest_V1_OnlineCPUsResponse
    {
        guard let cpus = Uevents.wait(for: wait, { () -> [Int]? in
            let cpus = presentCPUs(root: root)
            return cpus.count >= present ? cpus : nil
        }) else {
            throw GuestAgentError(.deadlineExceeded, "\(presentCPUs(root: root).count) CPUs present after \(wait), \(present) expected")
        }
        let keep = Set(cpus.sorted().prefix(max(1, wanted ?? cpus.count)))
        // Offline first (highest first), then online: never more online than asked on the way.
        for cpu in cpus.sorted(by: >) where !keep.contains(cpu) { try setOnline(cpu, false, root: root) }
        for cpu in cpus.sorted() where keep.contains(cpu) { try setOnline(cpu, true, root: root) }
        var response = Qemubox_Guest_V1_OnlineCPUsResponse()
        response.presentCpus = UInt32(cpus.count)
        response.onlineCpus = UInt32(parseList((try? String(contentsOfFile: root + "/online", encoding: .utf8)) ?? "").count)
        response.memoryTotalBytes = UInt64(qb_total_memory())
        return response
    }

    /// Writes cpuN's `online` file when its state differs; a CPU without one (cpu0) is left as it is.
    static func setOnline(_ cpu: Int, _ online: Bool, root: String) throws {
        let path = "\(root)/cpu\(cpu)/online"
        guard let state = try? String(contentsOfFile: path, encoding: .utf8), state.hasPrefix(online ? "0" : "1") else { return }
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw GuestAgentError.system("open \(path)") }
        defer { close(fd) }
        guard write(fd, online ? "1" : "0", 1) == 1 else {
            throw GuestAgentError.system("\(online ? "online" : "offline") cpu\(cpu)")
        }
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
