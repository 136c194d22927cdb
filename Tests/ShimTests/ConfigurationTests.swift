import Foundation
import QemuboxKit
import TestSupport
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsWithoutAFile() throws {
        let configuration = try QemuboxConfiguration.load(environment: [:])
        if !FileManager.default.fileExists(atPath: QemuboxConfiguration.defaultPath) {
            #expect(configuration == QemuboxConfiguration())
        }
        #expect(QemuboxConfiguration().stateDirectory == "/run/qemubox")
        #expect(QemuboxConfiguration().accelerator == .auto)
    }

    @Test func parsesEveryKey() throws {
        let configuration = try QemuboxConfiguration.parse("""
            qemu = "/usr/bin/qemu-system-x86_64"
            accelerator = "tcg"
            vcpus = 2
            memory_mib = 512
            guest_overhead_mib = 64
            tcg_translation_buffer_mib = 16
            max_vcpus = 4
            max_memory_mib = 4096
            machine = "q35"
            writable_layer_mib = 2048
            state_dir = "/run/qbx"
            cache_dir = "/var/cache/qbx"
            boot_timeout_seconds = 30
            shutdown_timeout_seconds = 5
            log_level = "debug"
            guest_debug = true
            warm_start = true
            template_dir = "/var/cache/qbx/templates"
            warm_spares = 2
            warm_spare_idle_seconds = 30
            kernel = ""
            guest_image = ""
            """)
        #expect(configuration.qemuBinary == "/usr/bin/qemu-system-x86_64")
        #expect(configuration.accelerator == .tcg)
        #expect(configuration.vcpus == 2)
        #expect(configuration.memoryMiB == 512)
        #expect(configuration.guestOverheadMiB == 64)
        #expect(configuration.translationBufferMiB == 16 && QemuboxConfiguration().translationBufferMiB == 64)
        let pod = try PodConfiguration(id: "c", namespace: "n", stateDirectory: "/tmp/x", host: configuration)
        #expect(pod.sandbox(name: "v", directory: "/tmp/x/vm", shape: VMShape(vcpus: 1, memoryMiB: 256)).translationBufferMiB == 16)
        #expect(configuration.maxVCPUs == 4 && configuration.maxMemoryMiB == 4096 && configuration.machineType == .q35)
        #expect(QemuboxConfiguration().maxVCPUs == nil && QemuboxConfiguration().machineType == .auto)
        #expect(configuration.writableLayerMiB == 2048)
        #expect(configuration.stateDirectory == "/run/qbx")
        #expect(configuration.cacheDirectory == "/var/cache/qbx")
        #expect(configuration.templates == VMTemplateStore(directory: "/var/cache/qbx/templates"))
        #expect(QemuboxConfiguration().templates == nil)
        #expect(configuration.warmSpares == 2 && configuration.warmSpareIdleSeconds == 30)
        #expect(QemuboxConfiguration().warmSpares == 0 && QemuboxConfiguration().warmSpareIdleSeconds == 600)
        #expect(configuration.bootTimeoutSeconds == 30)
        #expect(configuration.shutdownTimeoutSeconds == 5)
        #expect(configuration.logLevel == "debug")
        #expect(configuration.guestDebug)
        #expect(configuration.kernel == nil && configuration.guestImage == nil)
    }

    @Test(arguments: [
        ("vcpus = \"two\"", "vcpus must be an integer"),
        ("vcpus = 0", "vcpus = 0 is out of range"),
        ("memory_mib = 1", "out of range"),
        ("tcg_translation_buffer_mib = 2", "out of range"),
        ("accelerator = \"hvf\"", "not one of auto, kvm, tcg"),
        ("machine = \"pc\"", "not one of auto, microvm, q35"),
        ("machine = \"microvm\"\nmax_vcpus = 2", "cannot hotplug"),
        ("max_memory_mib = -1", "out of range"),
        ("acelerator = \"tcg\"", "unknown key \"acelerator\""),
        ("state_dir = \"relative\"", "must be an absolute path"),
        ("log_level = \"loud\"", "log_level"),
        ("kernel = \"/nonexistent/vmlinux\"", "not a readable file"),
        ("guest_debug = 1", "must be a boolean"),
        ("warm_start = \"yes\"", "must be a boolean"),
        ("template_dir = \"templates\"", "must be an absolute path"),
        ("warm_spares = 65", "warm_spares = 65 is out of range"),
        ("warm_spare_idle_seconds = 0", "out of range"),
        ("vcpus = ", "cfg.toml:1:"),
        ("network = 1", "network must be a table"),
        ("[network]\nnetworks = \"x\"", "network.networks must be an array of strings"),
        ("[network]\nnetworks = [\"a\", \"a\"]", "at most 8 distinct networks"),
        ("[network]\nnic_slots = 9", "network.nic_slots = 9 is out of range"),
        ("[network]\nconf_dir = \"cni\"", "network.conf_dir = \"cni\" must be an absolute path"),
        ("[network]\nbin_dirs = [\"/usr/lib/cni\", \"bin\"]", "must be an absolute path"),
        ("[network]\nnetwork = [\"x\"]", "unknown key \"network.network\""),
        ("jail = true", "jail must be a table"),
        ("[jail]\nseccomp = \"strict\"", "jail.seccomp = \"strict\" is not one of enforce, log, off"),
        ("[jail]\nfirst_id = 0", "jail.first_id = 0 is out of range"),
        ("[jail]\nfirst_id = 4294967000\nid_count = 1000", "[jail]: jail ids 4294967000+1000"),
        ("[jail]\nenabled = \"no\"", "jail.enabled must be a boolean"),
        ("[jail]\nuid = 5", "unknown key \"jail.uid\""),
        ("[tracing]\nendpoint = \"127.0.0.1:4318\"", "tracing.endpoint = \"127.0.0.1:4318\" is not an http(s) URL"),
        ("[tracing]\nprotocol = \"grpc\"", "tracing.protocol = \"grpc\" is not one of http/protobuf, http/json"),
        ("[tracing]\nendpoint = 4318", "tracing.endpoint must be a string"),
        ("[tracing]\nsampler = \"always\"", "unknown key \"tracing.sampler\""),
    ])
    func rejectsWithClearErrors(text: String, message: String) {
        #expect {
            try QemuboxConfiguration.parse(text, source: "cfg.toml")
        } throws: { error in
            guard let error = error as? QemuboxError else { return false }
            return error.code == .invalidConfiguration && error.message.contains(message)
                && error.message.hasPrefix("cfg.toml")
        }
    }

    @Test func networkTable() throws {
        let configuration = try QemuboxConfiguration.parse("""
            [network]
            networks = ["pods", "storage"]
            conf_dir = "/etc/qbx/net.d"
            bin_dirs = ["/usr/lib/cni"]
            cache_dir = "/var/lib/qbx/cni"
            nic_slots = 2
            """)
        #expect(configuration.network.networks == ["pods", "storage"])
        #expect(configuration.network.configurationDirectory == "/etc/qbx/net.d")
        #expect(configuration.network.binaryDirectories == ["/usr/lib/cni"])
        #expect(configuration.network.cacheDirectory == "/var/lib/qbx/cni")
        #expect(configuration.network.nicSlots == 2)
        #expect(QemuboxConfiguration().network.networks.isEmpty)
        #expect(QemuboxConfiguration().network.nicSlots == 1)
    }

    @Test func jailTable() throws {
        let configuration = try QemuboxConfiguration.parse("""
            [jail]
            first_id = 2000000000
            id_count = 100
            seccomp = "log"
            """)
        #expect(configuration.jail.firstID == 2_000_000_000 && configuration.jail.idCount == 100)
        #expect(configuration.jail.seccomp == .log)
        let jail = try #require(configuration.jail.jail)
        #expect(jail.firstID == 2_000_000_000 && jail.idCount == 100)
        #expect(jail.overridden(by: ["QEMUBOX_JAIL_SECCOMP": "off"]).seccomp == .off)
        #expect(jail.overridden(by: ["QEMUBOX_JAIL_SECCOMP": "bogus"]).seccomp == jail.seccomp)
        #expect(try QemuboxConfiguration.parse("[jail]\nenabled = false").jail.jail == nil)
        #expect(QemuboxConfiguration().jail.enabled && QemuboxConfiguration().jail.seccomp == .enforce)
    }

    @Test func tracingTable() throws {
        let off = QemuboxConfiguration().tracing
        #expect(off.endpoint == nil && !off.enabled(environment: [:]))
        #expect(off.enabled(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"]))
        #expect(!off.enabled(environment: ["OTEL_EXPORTER_OTLP_ENDPOINT": ""]))
        let on = try QemuboxConfiguration.parse("[tracing]\nendpoint = \"http://127.0.0.1:4318\"\nprotocol = \"http/json\"").tracing
        #expect(on.endpoint == "http://127.0.0.1:4318" && on.encoding == .json && on.enabled(environment: [:]))
        #expect(try QemuboxConfiguration.parse("[tracing]\nendpoint = \"\"").tracing.endpoint == nil)
    }

    @Test func environmentNamesTheFile() async throws {
        try await TemporaryDirectory.with { dir in
            let path = dir + "/config.toml"
            try "vcpus = 3\n".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try QemuboxConfiguration.load(environment: ["QEMUBOX_CONFIG": path]).vcpus == 3)
            #expect(throws: QemuboxError.self) {
                try QemuboxConfiguration.load(environment: ["QEMUBOX_CONFIG": dir + "/missing.toml"])
            }
        }
    }
}
