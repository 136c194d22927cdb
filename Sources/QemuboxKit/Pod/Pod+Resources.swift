import Foundation
import OCISpec
import QemuboxAPI

/// `Update`: a container's cgroup limits change in the guest, and the VM follows them
/// where it can (``VirtualMachine/setVCPUs(_:timeout:)``, ``VirtualMachine/setMemory(mib:timeout:)``).
extension Pod {
    /// What the VM should hold for the pod's containers' limits.
    struct ResourceTarget: Equatable {
        var vcpus: Int
        var memoryMiB: Int
    }

    /// How long the guest gets for each hotplug step (onlining vCPUs, plugging or giving back memory).
    static let hotplugTimeout: Duration = .seconds(15)

    /// Changes a container's resource limits: the VM grows first (vCPUs added and
    /// onlined by the guest, memory plugged), then the container's cgroup in the guest
    /// changes, then the VM shrinks to what is left. The VM is sized for the sum of its
    /// containers' limits (CPU quotas rounded up; memory limits plus the guest's
    /// overhead), never below its boot size, CPUs at most to its ceiling. A memory limit
    /// above what the VM can reach (its ceiling, or its boot memory without one) is
    /// refused before anything changes. Memory the guest cannot give back in time stays
    /// plugged and the error says how much.
    public func update(_ request: Containerd_Task_V2_UpdateTaskRequest) async throws {
        await acquireCreateTurn()
        defer { releaseCreateTurn() }
        let container = try requireContainer(request.id)
        let sandbox = try requireSandbox()
        var resources = container.resources
        if request.hasResources, !request.resources.value.isEmpty {
            do {
                // Limits the update leaves out stay as they were (crun update changes only those given).
                var given = try RuntimeSpec.Resources(json: request.resources.value)
                if given.cpu == nil { given.cpu = resources?.cpu }
                if given.memory == nil { given.memory = resources?.memory }
                resources = given
            } catch {
                throw QemuboxError(.invalidArgument, "update \(request.id): the resources are not an OCI LinuxResources: \(error)")
            }
        }
        let vm = sandbox.vm
        let machine = vm.machine
        let current: MachineResources
        do {
            current = try await vm.resources()
        } catch {
            throw Self.wrap(error, "update \(request.id)")
        }
        let target = try resourceTarget(for: request.id, resources: resources, machine: machine)
        let online = onlineVCPUs ?? machine.vcpus
        let started = ContinuousClock.now
        defer {
            logger.info("update \(request.id)", metadata: [
                "vcpus": "\(online) -> \(target.vcpus)", "memory_mib": "\(current.memoryMiB) -> \(target.memoryMiB)",
                "seconds": "\((ContinuousClock.now - started).podSeconds)"])
        }
        do {
            if target.vcpus > online { try await setVCPUs(target.vcpus, on: sandbox, plugged: current.vcpus) }
            if target.memoryMiB > current.memoryMiB { try await setMemory(target.memoryMiB, on: vm, growing: true) }
            _ = try await sandbox.agent.task.update(request)
            containers[request.id]?.resources = resources
            if target.vcpus < online { try await setVCPUs(target.vcpus, on: sandbox, plugged: current.vcpus) }
            if target.memoryMiB < current.memoryMiB { try await setMemory(target.memoryMiB, on: vm, growing: false) }
        } catch {
            await recordResources(sandbox)
            throw Self.wrap(error, "update \(request.id)")
        }
        await recordResources(sandbox)
    }

    /// Writes what the VM holds now for `qemubox ps` (``VMResourcesRecord``); failures are logged.
    func recordResources(_ sandbox: Sandbox) async {
        guard sandbox.vm.machine.wantsHotplug, let now = try? await sandbox.vm.resources() else { return }
        let record = VMResourcesRecord(vcpus: onlineVCPUs ?? now.vcpus, memoryMiB: now.memoryMiB,
                                       maxVCPUs: now.maxVCPUs, maxMemoryMiB: now.maxMemoryMiB)
        do {
            try record.write(to: configuration.vmDirectory)
        } catch {
            logger.warning("\(error)")
        }
    }

    /// The VM size the pod's containers need once `containerID` has `resources`,
    /// checked against what the machine can reach.
    func resourceTarget(for containerID: String, resources: RuntimeSpec.Resources?, machine: MachineDescription) throws
        -> ResourceTarget
    {
        var all = containers.values.filter { !$0.deleted && $0.id != containerID }.compactMap(\.resources)
        if let resources { all.append(resources) }
        let vcpus = min(max(machine.vcpus, VMShape.vcpusNeeded(all) ?? machine.vcpus), machine.vcpuCeiling)
        let memoryCeiling = machine.memoryCeilingMiB
        let limits = VMShape.memoryNeeded(all, overheadMiB: 0) ?? 0
        if limits > memoryCeiling {
            throw QemuboxError(.failedPrecondition,
                "memory limits of \(limits) MiB do not fit the VM, which "
                + (machine.hotplugMemoryMiB > 0 ? "can grow to \(memoryCeiling) MiB (its ceiling: io.qemubox.max_memory_mib or max_memory_mib in the qemubox configuration)"
                    : "has \(memoryCeiling) MiB and cannot grow (no memory ceiling: io.qemubox.max_memory_mib or max_memory_mib in the qemubox configuration)"))
        }
        let needed = VMShape.memoryNeeded(all, overheadMiB: configuration.guestOverheadMiB) ?? machine.memoryMiB
        let memory = machine.hotplugMemoryMiB > 0 ? min(max(machine.memoryMiB, needed), memoryCeiling) : machine.memoryMiB
        return ResourceTarget(vcpus: vcpus, memoryMiB: memory)
    }

    /// Grows a VM that has a ceiling to fit a pod's joining container `containerID` with
    /// `resources` beside the others (never shrinks it); a memory limit beyond the ceiling is
    /// refused before anything changes. A VM without a ceiling is left as it is.
    func growToFit(_ containerID: String, resources: RuntimeSpec.Resources?, sandbox: Sandbox) async throws {
        let machine = sandbox.vm.machine
        guard machine.wantsHotplug else { return }
        do {
            let current = try await sandbox.vm.resources()
            let target = try resourceTarget(for: containerID, resources: resources, machine: machine)
            let online = onlineVCPUs ?? machine.vcpus
            if target.vcpus > online { try await setVCPUs(target.vcpus, on: sandbox, plugged: current.vcpus) }
            if target.memoryMiB > current.memoryMiB { try await setMemory(target.memoryMiB, on: sandbox.vm, growing: true) }
            if target.vcpus > online || target.memoryMiB > current.memoryMiB {
                await recordResources(sandbox)
                logger.info("grew the VM of pod \(configuration.id) for \(containerID)", metadata: [
                    "vcpus": "\(online) -> \(max(online, target.vcpus))",
                    "memory_mib": "\(current.memoryMiB) -> \(max(current.memoryMiB, target.memoryMiB))"])
            }
        } catch {
            throw Self.wrap(error, "task \(containerID)")
        }
    }

    /// Has `count` vCPUs online in the guest: plugs what is missing (vCPUs are never
    /// unplugged, see ``VirtualMachine/setVCPUs(_:timeout:)``), then the guest onlines or
    /// offlines CPUs to match; fails unless the guest ends with `count` online.
    func setVCPUs(_ count: Int, on sandbox: Sandbox, plugged: Int) async throws {
        if count > plugged { try await sandbox.vm.setVCPUs(count, timeout: Self.hotplugTimeout) }
        var request = Qemubox_Guest_V1_OnlineCPUsRequest()
        request.presentCpus = UInt32(max(count, plugged))
        request.onlineCpus = UInt32(count)
        request.timeoutMs = UInt32(Self.hotplugTimeout.components.seconds * 1000)
        let answer = try await sandbox.agent.system.onlineCPUs(request, options: .init(timeout: Self.hotplugTimeout + .seconds(5)))
        // The guest's word, bounded by what QEMU has plugged.
        onlineVCPUs = min(Int(answer.onlineCpus), max(count, plugged))
        guard answer.onlineCpus == UInt32(count) else {
            throw QemuboxError(.system, "the guest has \(answer.onlineCpus) vCPUs online (\(answer.presentCpus) present), \(count) expected")
        }
    }

    /// Resizes the VM's memory; growing must complete, shrinking says how far it got.
    func setMemory(_ mib: Int, on vm: VirtualMachine, growing: Bool) async throws {
        let reached = try await vm.setMemory(mib: mib, timeout: Self.hotplugTimeout)
        guard reached.pluggedMemoryMiB != reached.requestedMemoryMiB else { return }
        if growing {
            throw QemuboxError(.system, "the guest plugged \(reached.pluggedMemoryMiB) of \(reached.requestedMemoryMiB) MiB "
                + "within \(Self.hotplugTimeout); the VM has \(reached.memoryMiB) MiB")
        }
        throw QemuboxError(.failedPrecondition,
            "the guest gave memory back down to \(reached.memoryMiB) MiB, not \(mib) MiB, within \(Self.hotplugTimeout) "
            + "(memory in use cannot move out); the container's limit is applied and the guest goes on giving memory back as it frees it")
    }
}
