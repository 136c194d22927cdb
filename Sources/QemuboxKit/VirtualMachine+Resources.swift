import Foundation
import QMPClient

/// The vCPUs and memory a running machine has, as QEMU reports them.
public struct MachineResources: Sendable, Hashable {
    /// vCPUs plugged now.
    public var vcpus: Int
    /// The vCPU ceiling (``MachineDescription/maxVCPUs``, or ``vcpus`` without hotplug).
    public var maxVCPUs: Int
    /// Boot memory, MiB.
    public var bootMemoryMiB: Int
    /// Memory the guest has plugged from the virtio-mem region, MiB.
    public var pluggedMemoryMiB: Int
    /// What the host asked the guest to plug, MiB.
    public var requestedMemoryMiB: Int
    /// The memory ceiling, MiB (``MachineDescription/maxMemoryMiB``, or boot memory without hotplug).
    public var maxMemoryMiB: Int

    /// Boot plus plugged memory, MiB.
    public var memoryMiB: Int { bootMemoryMiB + pluggedMemoryMiB }
}

/// vCPUs and memory changed while the machine runs (q35 only: microvm has neither ACPI
/// CPU hotplug nor a device-memory region).
///
/// - vCPUs: `device_add` of the CPU type `query-hotpluggable-cpus` names into a free
///   slot; the guest learns of it through ACPI and must online it (the guest agent does:
///   ``GuestAgentConnection``'s `OnlineCPUs`). Removal is `device_del`: ACPI asks the
///   guest to eject it, the guest kernel offlines it and QEMU reports DEVICE_DELETED.
///   Only vCPUs added this way can go, boot vCPUs stay. Under TCG removal is refused:
///   QEMU 7.2 aborts ("double free or corruption") when a slot is plugged again after a
///   removal (measured); take vCPUs offline in the guest instead, which leaves them
///   plugged and halted (what ``Pod`` does).
/// - Memory: one virtio-mem device (``MachineDescription/hotplugMemoryMiB``); its
///   `requested-size` is set and the guest's driver plugs or unplugs 2 MiB blocks, each
///   change reported by MEMORY_DEVICE_SIZE_CHANGE. Hot-added memory is onlined movable
///   (`memhp_default_state=online_movable`), so the guest can give it back as long as
///   what is in it can move elsewhere.
extension VirtualMachine {
    /// virtio-mem's block on x86-64 (QEMU's default with transparent huge pages): sizes are multiples of it.
    static let memoryDeviceBlockMiB = 2

    /// The machine's vCPUs and memory now.
    public func resources() async throws -> MachineResources {
        guard state == .running, let qmp else { throw QemuboxError(.invalidState, "resources in state \(state)") }
        let cpus = try await qmp.queryCPUsFast().count
        var plugged = 0
        var requested = 0
        if machine.hotplugMemoryMiB > 0, let mem = try await virtioMem(qmp) {
            plugged = Int(mem.size >> 20)
            requested = Int(mem.requestedSize >> 20)
        }
        return MachineResources(
            vcpus: cpus, maxVCPUs: max(cpus, machine.vcpuCeiling),
            bootMemoryMiB: machine.memoryMiB, pluggedMemoryMiB: plugged, requestedMemoryMiB: requested,
            maxMemoryMiB: machine.memoryCeilingMiB)
    }

    /// Plugs or unplugs vCPUs until `count` are present (between the boot count and
    /// ``MachineDescription/maxVCPUs``). Adding returns once QEMU has the vCPUs (the
    /// guest still has to online them); removing waits up to `timeout` for the guest to
    /// eject each one. Returns the vCPUs present.
    @discardableResult
    public func setVCPUs(_ count: Int, timeout: Duration = .seconds(10)) async throws -> Int {
        guard state == .running, let qmp else { throw QemuboxError(.invalidState, "set vCPUs in state \(state)") }
        let ceiling = machine.vcpuCeiling
        guard (machine.vcpus...ceiling).contains(count) else {
            throw QemuboxError(.failedPrecondition, "\(machine.name): \(count) vCPUs is outside \(machine.vcpus)…\(ceiling) "
                + (ceiling == machine.vcpus ? "(the machine cannot hotplug vCPUs)" : "(boot vCPUs…ceiling)"))
        }
        let slots = try await qmp.queryHotpluggableCPUs()
        let present = slots.filter(\.isPlugged).count
        if count > present {
            let free = slots.filter { !$0.isPlugged }.sorted { $0.props.sortKey.lexicographicallyPrecedes($1.props.sortKey) }
            for slot in free.prefix(count - present) {
                let id = "qbx-cpu-" + slot.props.sortKey.map(String.init).joined(separator: "-")
                do {
                    try await qmp.deviceAdd(driver: slot.type, id: id, properties: slot.props.deviceArguments)
                } catch {
                    throw QemuboxError(.system, "\(machine.name): adding vCPU \(id) failed: \(error)")
                }
            }
        } else if count < present {
            guard resolved?.host.accelerator.accelerator != .tcg else {
                throw QemuboxError(.failedPrecondition, "\(machine.name): vCPUs are not unplugged under TCG "
                    + "(QEMU 7.2 aborts when a slot is plugged again); take them offline in the guest instead")
            }
            // Ours only (device_add'ed: /machine/peripheral/ID), the newest first.
            let removable = slots.compactMap { slot -> (String, [Int])? in
                guard let path = slot.qomPath, path.hasPrefix("/machine/peripheral/") else { return nil }
                return (String(path.dropFirst("/machine/peripheral/".count)), slot.props.sortKey)
            }.sorted { $0.1.lexicographicallyPrecedes($1.1) }.reversed()
            guard removable.count >= present - count else {
                throw QemuboxError(.failedPrecondition, "\(machine.name): only \(removable.count) hot-added vCPUs can be removed")
            }
            for (id, _) in removable.prefix(present - count) {
                let path = "/machine/peripheral/" + id
                try await removeDevice(id, what: "vCPU", timeout: timeout) {
                    guard let slots = try? await qmp.queryHotpluggableCPUs() else { return false }
                    return !slots.contains { $0.qomPath == path }
                }
            }
        }
        return try await qmp.queryCPUsFast().count
    }

    /// Asks the guest to hold `mib` of memory in all (boot memory plus the virtio-mem
    /// region's plugged blocks) and waits up to `timeout` for it to get there. Growing
    /// completes unless the guest is stuck; shrinking completes as far as the guest can
    /// move pages out of the blocks it gives back. Returns the resources reached, which
    /// the caller compares with what it asked for.
    @discardableResult
    public func setMemory(mib: Int, timeout: Duration = .seconds(10)) async throws -> MachineResources {
        guard state == .running, let qmp else { throw QemuboxError(.invalidState, "set memory in state \(state)") }
        let ceiling = machine.memoryCeilingMiB
        guard (machine.memoryMiB...ceiling).contains(mib) else {
            throw QemuboxError(.failedPrecondition, "\(machine.name): \(mib) MiB is outside \(machine.memoryMiB)…\(ceiling) MiB "
                + (machine.hotplugMemoryMiB == 0 ? "(the machine cannot hotplug memory)" : "(boot memory…ceiling)"))
        }
        let block = Self.memoryDeviceBlockMiB
        let wanted = Int64((mib - machine.memoryMiB + block - 1) / block * block) << 20
        let events = self.events()
        let reached = Task { () -> Bool in
            for await event in events where event.name == "MEMORY_DEVICE_SIZE_CHANGE" {
                if event.data["id"]?.stringValue == QEMUCommandLine.hotplugMemoryDevice,
                   event.data["size"]?.intValue == wanted { return true }
            }
            return false
        }
        defer { reached.cancel() }
        do {
            _ = try await qmp.execute("qom-set", arguments: .object([
                "path": .string("/machine/peripheral/\(QEMUCommandLine.hotplugMemoryDevice)"),
                "property": .string("requested-size"), "value": .int(wanted),
            ]))
        } catch {
            throw QemuboxError(.system, "\(machine.name): resizing the memory device failed: \(error)")
        }
        if try await virtioMem(qmp)?.size != wanted {
            _ = try await Self.first(reached, within: timeout)
        }
        return try await resources()
    }

    /// `device_del` of `id`, then up to `timeout` for QEMU to confirm (the guest must let
    /// go of it first): DEVICE_DELETED for the device, or for one of its children (a
    /// vCPU reports only its local APIC) once `gone()` agrees.
    func removeDevice(_ id: String, what: String, timeout: Duration,
                      gone: (@Sendable () async -> Bool)? = nil) async throws {
        guard let qmp else { throw QemuboxError(.invalidState, "remove \(id) in state \(state)") }
        let events = self.events()
        let path = "/machine/peripheral/" + id
        let deleted = Task { () -> Bool in
            for await event in events {
                guard case .deviceDeleted(let device, let eventPath) = event.kind else { continue }
                if device == id { return true }
                if let gone, eventPath == path || eventPath.hasPrefix(path + "/"), await gone() { return true }
            }
            return false
        }
        defer { deleted.cancel() }
        do {
            try await qmp.deviceDel(id: id)
        } catch {
            throw QemuboxError(.system, "\(machine.name): removing \(what) \(id) failed: \(error)")
        }
        guard try await Self.first(deleted, within: timeout) else {
            throw QemuboxError(.timeout, "\(machine.name): the guest did not release \(what) \(id) within \(timeout)")
        }
    }

    /// The value of `task`, or false when `timeout` passes first (`task` is then cancelled).
    static func first(_ task: Task<Bool, Never>, within timeout: Duration) async throws -> Bool {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { await task.value }
            group.addTask {
                try? await Task.sleep(for: timeout)
                // Ends the waiting task too: the group returns only when both children have.
                task.cancel()
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// The virtio-mem device's entry of `query-memory-devices`.
    private func virtioMem(_ qmp: QMPClient) async throws -> VirtioMemInfo? {
        try await qmp.queryMemoryDevices().lazy.compactMap(\.virtioMem)
            .first { $0.id == QEMUCommandLine.hotplugMemoryDevice }
    }
}

extension CPUInstanceProperties {
    /// Where the slot sits, outermost first (socket, die, core, thread): the order slots are filled in.
    var sortKey: [Int] { [socketID ?? 0, dieID ?? 0, coreID ?? 0, threadID ?? 0] }
}

/// A host process's CPU time and resident memory, read from the host kernel's
/// `/proc/PID/stat` and `/proc/PID/status` (never from the process itself).
public struct ProcessUsage: Sendable, Hashable {
    /// User plus system time of all its threads, microseconds.
    public var cpuMicroseconds: UInt64
    /// Resident set size, bytes.
    public var residentBytes: UInt64

    /// The usage of `pid`, nil when it is gone or unreadable.
    public static func read(pid: Int32, proc: String = "/proc") -> ProcessUsage? {
        guard let fields = VMStateRecord.statFields(of: pid, procRoot: proc),
              let status = try? String(contentsOfFile: "\(proc)/\(pid)/status", encoding: .utf8),
              fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12])  // fields 14, 15
        else { return nil }
        let ticks = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        let rssKiB = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { $0.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } } ?? 0
        return ProcessUsage(cpuMicroseconds: (user + system) * 1_000_000 / ticks, residentBytes: rssKiB << 10)
    }
}
