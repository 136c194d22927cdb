import QemuboxAPI
import SwiftProtobuf

/// A pod's figures of the moment, for a metrics scrape (`qemubox metrics`).
public struct PodMetrics: Sendable {
    /// One container's cgroup in the guest.
    public struct Container: Sendable {
        /// Container id.
        public var id: String
        /// CPU time its processes used, microseconds.
        public var cpuMicroseconds: UInt64
        /// Memory its cgroup charges now.
        public var memoryBytes: UInt64
        /// Its memory limit (0: none).
        public var memoryLimitBytes: UInt64
        /// Tasks in its cgroup.
        public var pids: UInt64
    }

    /// The VM as the host sees it (nil once it is gone).
    public var vm: Qemubox_Shim_V1_VMStats?
    /// The running containers that answered.
    public var containers: [Container]
}

extension Pod {
    /// The VM's size and QEMU's CPU time and RSS, and each running container's cgroup
    /// figures from the guest (a container whose stats fail is left out). Nothing while
    /// the VM is not up.
    public func metrics() async -> PodMetrics {
        guard let sandbox, await vmAlive() else { return PodMetrics(vm: nil, containers: []) }
        var result = PodMetrics(vm: await vmStats(sandbox), containers: [])
        let running = containers.values.filter { !$0.deleted && $0.processes[""]?.exit == nil }.map(\.id).sorted()
        for id in running {
            var request = Containerd_Task_V2_StatsRequest()
            request.id = id
            guard let response = try? await sandbox.agent.task.stats(request, options: .init(timeout: .seconds(5))),
                  response.hasStats,
                  let cgroup = try? Io_Containerd_Cgroups_V2_Metrics(serializedBytes: response.stats.value)
            else { continue }
            result.containers.append(PodMetrics.Container(
                id: id, cpuMicroseconds: cgroup.cpu.usageUsec, memoryBytes: cgroup.memory.usage,
                memoryLimitBytes: cgroup.memory.usageLimit, pids: cgroup.pids.current))
        }
        return result
    }
}
