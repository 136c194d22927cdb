#if canImport(Glibc)
import Glibc
#endif
import ContainerdTestSupport
import Foundation
import TestSupport
import Testing

/// A container on a host with `[network] networks` in a spare VM (`warm_spares`): the shim
/// runs the networks in the spare QEMU's own namespace, named as it names the ones it makes.
/// In this suite: its tests count the shim's `qbx-*` namespaces, one at a time.
extension ContainerdNetworkTests {
    /// `[network] networks` on the host and a ready spare: the container takes it, its networks
    /// are in the spare QEMU's namespace (the task pid's, as checkConnectivity checks), it is
    /// reachable both ways, and deleting it releases the address and the namespace's name. One
    /// that does not fit the next spare gets a VM of its own in the same kind of namespace. One
    /// whose shim (the spare's process) is killed is cleaned up by containerd's `shim delete`.
    @Test(.enabled(if: ContainerdNetworkTests.available))
    func configuredNetworksInASpare() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-templates") { templates in
            try await Self.withNetwork(qemubox: { containerd in
                ContainerdSpareTests.configuration(templates) + Self.shimNetworks(containerd)
            }) { containerd, netns in
                do {
                    _ = try await ContainerdSpareTests.firstSpare(containerd)
                    try await containerd.ctrCheck(
                        "run -d \(ContainerdSpareTests.qemubox) \(ContainerdSpareTests.image) own1 \(ContainerdNetworkTests.server("own1"))")
                    #expect(containerd.log(last: .max).contains("own1 runs in a spare VM"),
                            "\(containerd.log(last: .max).split(separator: "\n").filter { $0.contains("spare") }.joined(separator: "\n"))")
                    #expect(ContainerdNetworkTests.allocations(containerd).count == 1)
                    _ = try await ContainerdNetworkTests.checkConnectivity(containerd, netns, "own1")
                    try await ContainerdNetworkTests.remove(containerd, "own1")

                    // One that does not fit the next spare: the networks are made in that spare's
                    // namespace before the fit is known; the name keeps the namespace for the VM
                    // that starts instead, which joins it.
                    #expect(await eventually(timeout: .seconds(60)) { ContainerdSpareTests.ready(containerd).count == 1 },
                            "no spare got ready again")
                    try await containerd.ctrCheck(
                        "run -d --annotation io.qemubox.memory_mib=384 \(ContainerdSpareTests.qemubox) \(ContainerdSpareTests.image) own2 \(ContainerdNetworkTests.server("own2"))")
                    #expect(containerd.log(last: .max).contains("not using the spare VM"))
                    #expect(!containerd.log(last: .max).contains("own2 runs in a spare VM"))
                    _ = try await ContainerdNetworkTests.checkConnectivity(containerd, netns, "own2")
                    try await ContainerdNetworkTests.remove(containerd, "own2")

                    // The shim of one in a spare is killed: containerd's `shim delete` releases
                    // the address and the namespace's name (the VM died with its shim).
                    #expect(await eventually(timeout: .seconds(60)) { ContainerdSpareTests.ready(containerd).count == 1 },
                            "no spare got ready a third time")
                    try await containerd.ctrCheck(
                        "run -d \(ContainerdSpareTests.qemubox) \(ContainerdSpareTests.image) own3 sleep 1000")
                    #expect(containerd.log(last: .max).contains("own3 runs in a spare VM"))
                    #expect(ContainerdNetworkTests.allocations(containerd).count == 1)
                    let record = try Data(contentsOf: URL(fileURLWithPath:
                        containerd.stateRoot + "/\(containerd.namespace)/own3/shim.json"))
                    let fields = try JSONSerialization.jsonObject(with: record) as? [String: Any]
                    let shim = try #require(fields?["shimPid"] as? Int)
                    let spareDirectory = try #require(fields?["spareDirectory"] as? String)
                    // Its create's refill is let finish first (as in ContainerdSpareTests): a shim
                    // killed between making a spare's directory and starting its process leaves the
                    // directory to the next refill, which this test would not see.
                    #expect(await eventually(timeout: .seconds(60)) { ContainerdSpareTests.ready(containerd).count == 1 },
                            "own3's refill did not finish")
                    try await Self.killShimAndDelete(containerd, "own3", shim: Int32(shim))
                    // The spare's directory goes with the task's state, after the writeback
                    // `shim delete` hands to a process of its own.
                    #expect(await eventually(timeout: .seconds(60)) { !FileManager.default.fileExists(atPath: spareDirectory) },
                            "the killed spare's directory is left")
                    #expect(try ContainerdNetworkTests.shimNamespaces().isEmpty)
                } catch {
                    await ContainerdSpareTests.stopSpares(containerd)
                    throw error
                }
                await ContainerdSpareTests.stopSpares(containerd)
            }
        }
    }
}
