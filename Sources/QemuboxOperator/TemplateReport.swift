import Foundation
import QemuboxKit

/// The warm-start template store as `qemubox templates ls|prune` sees it.
///
/// Prune removes what can never be restored: incomplete templates (no `complete` marker, or a
/// state or RAM file missing or cut short), work directories of saves that died, and stale
/// templates (their kernel, initrd, image or QEMU changed); with `--all` every other template
/// too, except one whose RAM file a process holds open or mapped (a template memory holder or
/// a shim copying it into the sealed memfd clones map). A key whose lock a running save holds
/// is never touched. Running clones map that sealed copy, never the file, so removing a
/// template never disturbs them (its holder then exits).
public struct TemplateReport: Sendable {
    /// One template or work directory.
    public struct Template: Codable, Sendable, Hashable {
        /// The key.
        public var key: String
        /// The directory.
        public var directory: String
        /// `complete`, `incomplete`, `stale` or `saving`.
        public var state: String
        /// Whether all files are there.
        public var complete: Bool
        /// Whether a save holds the key's lock.
        public var locked: Bool
        /// Bytes of its files.
        public var bytes: UInt64
        /// Bytes on disk (the RAM file is sparse).
        public var allocatedBytes: UInt64
        /// When it was saved.
        public var created: Date
        /// Guest memory in MiB.
        public var memoryMiB: Int?
        /// vCPUs.
        public var vcpus: Int?
        /// Processes holding its RAM file open or mapped (a save, or a holder copying it).
        public var openBy: [String]
        /// Its memory holder, serving the sealed copy of its RAM clones map (`name[pid]`).
        public var memoryHolder: String?
        /// The VMs restored from it that map that sealed copy (`name[pid]`).
        public var clones: [String]
    }

    /// The store.
    public var store: VMTemplateStore
    /// Root of procfs.
    public var procRoot = "/proc"

    /// A report on the store in `directory`.
    public init(directory: String) {
        store = VMTemplateStore(directory: directory)
    }

    /// The templates, sorted by key, with the processes that use each.
    public func list() -> [Template] {
        let open = openFiles()
        let holders = memoryHolders(open)
        return store.storedTemplates().map { stored in
            let holder = holders[stored.directory]?.holder
            let clones = (holders[stored.directory]?.copies ?? []).flatMap { open.mappers(of: $0) }
                .filter { $0.pid != holder?.pid }
            return Template(key: stored.key, directory: stored.directory, state: Self.state(stored),
                            complete: stored.complete, locked: stored.locked, bytes: stored.bytes,
                            allocatedBytes: stored.allocatedBytes, created: stored.created,
                            memoryMiB: stored.memoryMiB, vcpus: stored.vcpus, openBy: Self.users(open, stored),
                            memoryHolder: holder.map { "\($0.command)[\($0.pid)]" },
                            clones: Array(Set(clones)).sorted { $0.pid < $1.pid }.map { "\($0.command)[\($0.pid)]" })
        }
    }

    func scan() -> [(VMTemplateStore.StoredTemplate, [String])] {
        let open = openFiles()
        return store.storedTemplates().map { ($0, Self.users(open, $0)) }
    }

    private func openFiles() -> OpenFiles {
        OpenFiles.scan(procRoot: procRoot, mappings: true) {
            $0.hasSuffix("memory") || $0.hasSuffix("memory (deleted)") || Self.isSealedCopy($0)
        }
    }

    private static func users(_ open: OpenFiles, _ stored: VMTemplateStore.StoredTemplate) -> [String] {
        open.holders(of: stored.directory + "/memory").map { "\($0.command)[\($0.pid)]" }
    }

    /// A `/proc` link target or mapping of a template's sealed RAM copy.
    static func isSealedCopy(_ target: String) -> Bool {
        target.hasPrefix("/memfd:" + VMTemplate.memoryMemfdName)
    }

    /// The memory holders by template directory: processes holding a sealed copy whose
    /// command line ends with the directory they serve (``TemplateMemoryHolder``'s form).
    private func memoryHolders(_ open: OpenFiles) -> [String: (holder: OpenFiles.Holder, copies: [FileIdentity])] {
        var found: [String: (holder: OpenFiles.Holder, copies: [FileIdentity])] = [:]
        for (holder, copies) in open.descriptorHolders(matching: Self.isSealedCopy) {
            let argv = VMInventory.commandLine(of: holder.pid, procRoot: procRoot).filter { !$0.isEmpty }
            guard argv.count >= 2, let directory = argv.last, directory.hasPrefix("/") else { continue }
            found[directory] = (holder, copies)
        }
        return found
    }

    static func state(_ stored: VMTemplateStore.StoredTemplate) -> String {
        if stored.isWorkDirectory { return stored.locked ? "saving" : "incomplete" }
        if !stored.complete { return "incomplete" }
        return stored.current ? "complete" : "stale"
    }

    /// What prune did with one template.
    public struct Decision: Codable, Sendable, Hashable {
        /// The key.
        public var key: String
        /// The directory.
        public var directory: String
        /// Whether it was removed (or would be, in a dry run).
        public var removed: Bool
        /// Why.
        public var reason: String
        /// Bytes on disk it took.
        public var allocatedBytes: UInt64
    }

    /// What prune did.
    public struct PruneResult: Codable, Sendable, Hashable {
        /// A decision per template.
        public var decisions: [Decision]
        /// Bytes freed (once the VMs using removed templates exit).
        public var freedBytes: UInt64
        /// Whether nothing was removed because it was a dry run.
        public var dryRun: Bool
    }

    /// Removes incomplete and stale templates, and with `all` every template not in use,
    /// skipping keys locked by a running save.
    public func prune(all: Bool, dryRun: Bool = false) throws -> PruneResult {
        var decisions: [Decision] = []
        var freed: UInt64 = 0
        for (stored, openBy) in scan() {
            let state = Self.state(stored)
            var reason: String
            var remove: Bool
            switch state {
            case "saving":
                (remove, reason) = (false, "a save is running (its lock is held)")
            case "incomplete":
                (remove, reason) = (true, stored.isWorkDirectory ? "work directory of a save that died" : "incomplete")
            case "stale":
                (remove, reason) = (true, "stale: its kernel, image or QEMU changed")
            default:
                if all && !openBy.isEmpty {
                    (remove, reason) = (false, "in use by \(openBy.joined(separator: ", ")) (a VM starts or runs from it)")
                } else {
                    (remove, reason) = (all, all ? "--all" : "kept")
                }
            }
            if remove && !openBy.isEmpty { reason += "; \(openBy.joined(separator: ", ")) keep(s) its files until they exit" }
            if remove && !dryRun {
                if try !store.removeStored(stored) {
                    (remove, reason) = (false, "a save is running (its lock is held)")
                }
            }
            if remove { freed += stored.allocatedBytes }
            decisions.append(Decision(key: stored.key, directory: stored.directory, removed: remove, reason: reason,
                                      allocatedBytes: stored.allocatedBytes))
        }
        return PruneResult(decisions: decisions, freedBytes: freed, dryRun: dryRun)
    }
}
