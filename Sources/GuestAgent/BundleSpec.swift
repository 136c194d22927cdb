import OCISpec

/// The one adjustment the agent makes to a bundle's config.json before crun
/// sees it.
enum BundleSpec {
    /// crun (unlike runc) mounts the whole hierarchy at /sys/fs/cgroup when the
    /// container has no cgroup namespace, so the container would see the guest's
    /// root cgroup instead of its own limits (which runtimes such as the JVM
    /// read there). When the spec mounts a cgroup filesystem and neither creates
    /// nor joins a cgroup namespace, a new cgroup namespace is added, giving the
    /// container runc's view: its own cgroup at /sys/fs/cgroup. Returns whether
    /// the spec changed (it is then saved, losslessly, in place).
    @discardableResult
    static func ensureCgroupNamespace(bundle: String) throws -> Bool {
        var spec: RuntimeSpec
        do {
            spec = try RuntimeSpec.load(bundle: bundle)
        } catch {
            throw GuestAgentError(.invalidArgument, "\(bundle)/config.json: \(error)")
        }
        guard addCgroupNamespaceIfNeeded(&spec) else { return false }
        do {
            try spec.save(bundle: bundle)
        } catch {
            throw GuestAgentError(.internal, "\(bundle)/config.json: \(error)")
        }
        return true
    }

    /// The decision of ``ensureCgroupNamespace(bundle:)`` on a loaded spec.
    static func addCgroupNamespaceIfNeeded(_ spec: inout RuntimeSpec) -> Bool {
        let mountsCgroup = (spec.mounts ?? []).contains {
            $0.destination == "/sys/fs/cgroup" && ($0.type == "cgroup" || $0.type == "cgroup2")
        }
        guard mountsCgroup, var linux = spec.linux else { return false }
        var namespaces = linux.namespaces ?? []
        guard !namespaces.contains(where: { $0.type == .cgroup }) else { return false }
        namespaces.append(RuntimeSpec.Namespace(type: .cgroup))
        linux.namespaces = namespaces
        spec.linux = linux
        return true
    }
}
