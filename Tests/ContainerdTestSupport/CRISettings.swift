import Foundation
import TestSupport

/// containerd's CRI plugin (`io.containerd.grpc.v1.cri`) as a private containerd runs it for
/// the CRI tests: the test's pause image as `sandbox_image`, CNI from a test directory, runc
/// (the default handler) and qemubox as runtime handlers. CRI's own state lives under the
/// instance's root and state (`<root>/io.containerd.grpc.v1.cri`, `<state>/…`), runc's under
/// `<dir>/runc`; the pod network namespaces are CRI's: `/var/run/netns/cni-*`.
public struct CRISettings: Sendable {
    /// The containerd namespace CRI works in (images must be imported there).
    public static let namespace = "k8s.io"
    /// The pause image scripts/make-pause-image.py writes.
    public static let pauseImage = "docker.io/library/qemubox-pause:latest"

    /// The image of every sandbox's pause container.
    public var sandboxImage = Self.pauseImage
    /// CNI configuration directory (the first conflist in it is the pod network).
    public var cniConfDir: String
    /// CNI plugin directory.
    public var cniBinDir = "/usr/lib/cni"
    /// Runtime handlers (RunPodSandbox's runtime_handler) and their containerd runtime types.
    public var runtimes: [String: String] = ["runc": "io.containerd.runc.v2", "qemubox": "io.containerd.qemubox.v1"]
    /// The handler of an empty runtime_handler.
    public var defaultRuntime = "runc"

    /// Settings with the CNI configuration in `cniConfDir`.
    public init(cniConfDir: String) {
        self.cniConfDir = cniConfDir
    }

    /// The plugin's table of containerd.toml (version 2) for an instance in `dir`.
    /// `restrict_oom_score_adj`: this machine cannot set the sandbox's default -998.
    public func configuration(dir: String) -> String {
        let cri = "plugins.\"io.containerd.grpc.v1.cri\""
        var text = """
            [\(cri)]
              sandbox_image = "\(sandboxImage)"
              restrict_oom_score_adj = true
              enable_selinux = false
              disable_apparmor = true
              stream_server_address = "127.0.0.1"
              stream_server_port = "0"
              [\(cri).cni]
                bin_dir = "\(cniBinDir)"
                conf_dir = "\(cniConfDir)"
                max_conf_num = 1
              [\(cri).containerd]
                default_runtime_name = "\(defaultRuntime)"
                snapshotter = "overlayfs"

            """
        for (name, type) in runtimes.sorted(by: { $0.key < $1.key }) {
            text += """
                    [\(cri).containerd.runtimes.\(name)]
                      runtime_type = "\(type)"

                """
            if type == "io.containerd.runc.v2" {
                // runc's state under the test's directory, not /run/containerd/runc/k8s.io.
                text += """
                          [\(cri).containerd.runtimes.\(name).options]
                            Root = "\(dir)/runc"

                    """
            }
        }
        return text
    }
}

extension PrivateContainerd {
    /// CRI's endpoint for a CRI client: `unix://<socket>`.
    public var criEndpoint: String { "unix://" + socket }

    /// Builds the pause image (scripts/make-pause-image.py: gcc -static) and imports it into
    /// CRI's namespace.
    public func importPauseImage() async throws {
        try await Shell.check("python3 \(Self.packageRoot)/scripts/make-pause-image.py \(dir)/pause.tar")
        try await ctrCheck("image import \(dir)/pause.tar")
    }
}
