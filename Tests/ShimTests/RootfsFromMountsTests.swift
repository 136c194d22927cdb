import ContainerdTestSupport
import Foundation
import QemuboxAPI
@testable import QemuboxKit
import TestSupport
import Testing

/// Rootfs planning from containerd's mounts, the EROFS layer cache and the
/// writeback of the writable layer (real mkfs.ext4, fsck.erofs, loop mounts).
@Suite struct RootfsFromMountsTests {
    static func layer(_ dir: String, _ files: [String: String]) throws {
        for (path, text) in files {
            let full = dir + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try text.write(toFile: full, atomically: true, encoding: .utf8)
        }
    }

    static func mount(_ type: String, _ source: String, _ options: [String]) -> Containerd_Types_Mount {
        var mount = Containerd_Types_Mount()
        mount.type = type
        mount.source = source
        mount.options = options
        return mount
    }

    @Test(.enabled(if: Prerequisite.tools("mkfs.ext4", "fsck.erofs")))
    func overlayLowersAreCachedAndShared() async throws {
        try await TemporaryDirectory.with { dir in
            try Self.layer(dir + "/snapshots/1/fs", ["bin/tool": "v1", "etc/a": "a"])
            try Self.layer(dir + "/snapshots/2/fs", ["etc/b": "b"])
            for path in ["snapshots/3/fs", "snapshots/3/work", "snapshots/4/fs", "snapshots/4/work", "s1", "s2"] {
                try FileManager.default.createDirectory(atPath: dir + "/" + path, withIntermediateDirectories: true)
            }
            let cache = EROFSLayerCache(directory: dir + "/cache")
            func overlay(_ n: Int) -> Containerd_Types_Mount {
                Self.mount("overlay", "overlay", ["index=off", "workdir=\(dir)/snapshots/\(n)/work",
                                                  "upperdir=\(dir)/snapshots/\(n)/fs",
                                                  "lowerdir=\(dir)/snapshots/2/fs:\(dir)/snapshots/1/fs"])
            }
            let first = try RootfsPlan.fromMounts([overlay(3)], bundleRootfs: dir + "/unused", containerID: "c1",
                                                  directory: dir + "/s1", cache: cache, writableBytes: 64 << 20)
            #expect(first.layers.map(\.cached) == [false, false])
            #expect(first.writeback == RootfsWriteback.Target(directory: dir + "/snapshots/3/fs", mode: .overlayUpper))
            #expect(first.scratchImage == dir + "/s1/scratch.ext4")
            #expect(first.plan.disks.map(\.id) == ["layer0", "layer1", "scratch0"])
            let readOnly = first.plan.disks.prefix(2).map(\.readOnly)
            #expect(readOnly == [true, true])
            #expect(first.plan.unmountTargets.first == "/run/qemubox/bundles/c1/rootfs")
            guard case .mount(let last) = first.plan.steps.last else {
                Issue.record("the last step is not the overlay mount")
                return
            }
            #expect(last.first?.type == "overlay")
            #expect(last.first?.options.contains("lowerdir=/run/qemubox/layers/c1/0:/run/qemubox/layers/c1/1") == true)
            for layer in first.layers {
                try await Shell.check("fsck.erofs \(layer.path)")
            }
            // A second container of the same image reuses both images.
            let second = try RootfsPlan.fromMounts([overlay(4)], bundleRootfs: dir + "/unused", containerID: "c2",
                                                   directory: dir + "/s2", cache: cache, writableBytes: 64 << 20)
            #expect(second.layers.map(\.cached) == [true, true])
            #expect(second.layers.map(\.path) == first.layers.map(\.path))
            // Pruning keeps images whose snapshot exists.
            #expect(cache.prune() == 0)
            try FileManager.default.removeItem(atPath: dir + "/snapshots/2")
            #expect(cache.prune() == 1)
        }
    }

    @Test(.enabled(if: Prerequisite.tools("mkfs.ext4")))
    func bindAndErofsAndNoMounts() async throws {
        try await TemporaryDirectory.with { dir in
            try Self.layer(dir + "/snap", ["etc/x": "x"])
            let cache = EROFSLayerCache(directory: dir + "/cache")
            try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
            let ro = try RootfsPlan.fromMounts([Self.mount("bind", dir + "/snap", ["ro", "rbind"])],
                                               bundleRootfs: "", containerID: "c", directory: dir + "/state",
                                               cache: cache)
            #expect(ro.scratchImage == nil && ro.writeback == nil)
            #expect(ro.plan.disks.map(\.id) == ["layer0"])
            let rw = try RootfsPlan.fromMounts([Self.mount("bind", dir + "/snap", ["rbind", "rw"])],
                                               bundleRootfs: "", containerID: "c", directory: dir + "/state",
                                               cache: cache, writableBytes: 16 << 20)
            #expect(rw.writeback == RootfsWriteback.Target(directory: dir + "/snap", mode: .apply))
            let bundle = try RootfsPlan.fromMounts([], bundleRootfs: dir + "/snap", containerID: "c",
                                                   directory: dir + "/state", cache: cache, writableBytes: 16 << 20)
            #expect(bundle.writeback?.mode == .apply)
            let image = ro.layers[0].path
            let erofs = try RootfsPlan.fromMounts([Self.mount("erofs", image, ["ro"])], bundleRootfs: "",
                                                  containerID: "c", directory: dir + "/state", cache: cache)
            #expect(erofs.plan.disks.map(\.path) == [image])
            #expect {
                try RootfsPlan.fromMounts([Self.mount("zfs", "pool/x", [])], bundleRootfs: "", containerID: "c",
                                          directory: dir + "/state", cache: cache)
            } throws: { ($0 as? QemuboxError)?.message.contains("not supported") == true }
            #expect {
                try RootfsPlan.fromMounts([Self.mount("overlay", "overlay", ["upperdir=/x"])], bundleRootfs: "",
                                          containerID: "c", directory: dir + "/state", cache: cache)
            } throws: { ($0 as? QemuboxError)?.message.contains("lowerdir") == true }
        }
    }
}
