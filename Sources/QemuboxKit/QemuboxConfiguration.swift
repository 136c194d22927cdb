import Foundation

/// qemubox's host configuration, read from `/etc/qemubox/config.toml` (or the
/// file named by `QEMUBOX_CONFIG`). Every key is optional; unknown keys, wrong
/// types and out-of-range values are errors that name the key and the file.
///
/// ```toml
/// qemu = "qemu-system-x86_64"     # path or name on PATH
/// kernel = ""                     # empty: GuestAssets defaults / QEMUBOX_KERNEL
/// guest_image = ""                # empty: GuestAssets defaults / QEMUBOX_GUEST_IMAGE
/// accelerator = "auto"            # auto | kvm | tcg
/// vcpus = 1
/// memory_mib = 256
/// guest_overhead_mib = 128        # added to a container's memory limit
/// max_vcpus = 0                   # hotplug ceilings: a VM may grow to these on Update
/// max_memory_mib = 0              # (0: no hotplug; either set: a q35 VM, Documentation/resources.md)
/// machine = "auto"                # auto | microvm | q35 (auto: q35 only where a ceiling is set)
/// tcg_translation_buffer_mib = 64 # TCG only: QEMU's translated-code buffer (host memory per VM)
/// writable_layer_mib = 1024       # sparse ext4 disk for the container's writes
/// state_dir = "/run/qemubox"
/// cache_dir = "/var/cache/qemubox/layers"
/// boot_timeout_seconds = 60
/// shutdown_timeout_seconds = 10
/// log_level = "info"              # trace | debug | info | notice | warning | error | critical
/// guest_debug = false
/// warm_start = false              # restore a saved guest instead of booting (Documentation/warm-start.md)
/// template_dir = "/var/cache/qemubox/templates"
/// warm_spares = 0                 # VMs kept started and exercised for the next containers (each its own shim)
/// warm_spare_idle_seconds = 600   # a spare nobody took by then shuts down
///
/// [network]                       # the shim runs CNI itself (Documentation/networking.md)
/// networks = ["qemubox"]          # conflist names, one interface each (eth0, eth1, …); empty: off
/// conf_dir = "/etc/cni/net.d"
/// bin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]
/// cache_dir = "/var/lib/qemubox/cni"
/// nic_slots = 1                   # NICs a VM gets for networks containerd adds after Create
///
/// [jail]                          # QEMU's confinement (Documentation/security.md)
/// enabled = true
/// first_id = 1500000000
/// id_count = 65536
/// seccomp = "enforce"             # enforce | log | off
///
/// [tracing]                       # OpenTelemetry traces (Documentation/operations.md#tracing)
/// endpoint = "http://127.0.0.1:4318"   # OTLP/HTTP; empty: off
/// protocol = "http/protobuf"      # or http/json
/// ```
public struct QemuboxConfiguration: Sendable, Hashable {
    /// QEMU binary (path or name on PATH).
    public var qemuBinary = "qemu-system-x86_64"
    /// Guest kernel path (nil: ``GuestAssets/locate(environment:)``).
    public var kernel: String?
    /// Guest system image path (nil: ``GuestAssets/locate(environment:)``).
    public var guestImage: String?
    /// Accelerator preference.
    public var accelerator: AcceleratorPreference = .auto
    /// Default vCPUs per VM.
    public var vcpus = 1
    /// Default guest memory per VM.
    public var memoryMiB = 256
    /// Memory added to a container's memory limit for the guest itself.
    public var guestOverheadMiB = 128
    /// vCPU hotplug ceiling of every VM (nil: none): `Update` may grow a VM to it.
    public var maxVCPUs: Int?
    /// Memory hotplug ceiling of every VM, MiB (nil: none).
    public var maxMemoryMiB: Int?
    /// Machine type (auto: microvm unless a hotplug ceiling is set).
    public var machineType: MachineDescription.MachineType = .auto
    /// Under TCG, QEMU's translated-code buffer per VM, MiB
    /// (``MachineDescription/translationBufferMiB``).
    public var translationBufferMiB = 64
    /// Size of the writable layer's sparse disk.
    public var writableLayerMiB = 1024
    /// Root of the shims' state (sockets, records, disks).
    public var stateDirectory = "/run/qemubox"
    /// Cache of EROFS images of snapshot layers.
    public var cacheDirectory = "/var/cache/qemubox/layers"
    /// Time for the VM to boot and its agent to answer.
    public var bootTimeoutSeconds = 60
    /// Time the guest gets to power off before QEMU is stopped harder.
    public var shutdownTimeoutSeconds = 10
    /// Log level name (swift-log's).
    public var logLevel = "info"
    /// Verbose agent logging on the guest console.
    public var guestDebug = false
    /// Warm start: restore VMs from a saved template instead of booting them.
    public var warmStart = false
    /// Where warm-start templates are kept.
    public var templateDirectory = VMTemplateStore.defaultDirectory
    /// Spare VMs kept ready on the host: started (restored, with ``warmStart``), their guest
    /// exercised once, each in a shim process of its own that becomes the shim of the next
    /// container that fits it (Documentation/warm-start.md). 0: none.
    public var warmSpares = 0
    /// A spare that no container took for this long shuts down.
    public var warmSpareIdleSeconds = 600

    /// Networking (`[network]`).
    public var network = NetworkSettings()
    /// `[jail]`: QEMU's confinement.
    public var jail = JailSettings()
    /// `[annotations]`: what containers may ask for with `io.qemubox.*` annotations.
    public var annotations = AnnotationPolicy()
    /// `[tracing]`: where traces go (OTLP/HTTP); off by default.
    public var tracing = TracingSettings()

    /// The default file.
    public static let defaultPath = "/etc/qemubox/config.toml"
    /// The environment variable naming another file.
    public static let environmentVariable = "QEMUBOX_CONFIG"

    /// The defaults.
    public init() {}

    /// Loads the file named by `QEMUBOX_CONFIG`, else `/etc/qemubox/config.toml`;
    /// a missing default file means the defaults, a missing named file is an error.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws
        -> QemuboxConfiguration
    {
        let named = environment[environmentVariable].flatMap { $0.isEmpty ? nil : $0 }
        let path = named ?? defaultPath
        guard let data = FileManager.default.contents(atPath: path) else {
            if named == nil && !FileManager.default.fileExists(atPath: path) { return QemuboxConfiguration() }
            throw QemuboxError(.invalidConfiguration, "\(path): cannot read the configuration file")
        }
        return try parse(bytes: Array(data), source: path)
    }

    /// Parses and validates TOML text (`source` names it in errors).
    public static func parse(_ text: String, source: String = "config.toml") throws -> QemuboxConfiguration {
        try parse(bytes: Array(text.utf8), source: source)
    }

    /// Parses and validates a TOML document given as bytes (UTF-8; invalid UTF-8 is an
    /// error). A malformed document's error names the line and column:
    /// `config.toml:3:7: expected '=' after a key, found ':'`.
    package static func parse(bytes: [UInt8], source: String = "config.toml") throws -> QemuboxConfiguration {
        let table: TOMLTable
        do {
            table = try TOMLParser.parse(bytes)
        } catch {
            throw QemuboxError(.invalidConfiguration, "\(source):\(error.line):\(error.column): \(error.message)")
        }
        var configuration = QemuboxConfiguration()
        for key in table.keys.sorted() {
            guard let value = table[key] else { continue }
            func string() throws -> String {
                guard let s = value.string else { throw wrongType(key, "a string", value, source) }
                return s
            }
            func int(_ range: ClosedRange<Int>) throws -> Int {
                guard let i = value.int else { throw wrongType(key, "an integer", value, source) }
                guard range.contains(i) else {
                    throw QemuboxError(.invalidConfiguration,
                        "\(source): \(key) = \(i) is out of range (\(range.lowerBound)…\(range.upperBound))")
                }
                return i
            }
            switch key {
            case "qemu": configuration.qemuBinary = try string()
            case "kernel": configuration.kernel = try string().nilIfEmpty
            case "guest_image": configuration.guestImage = try string().nilIfEmpty
            case "accelerator":
                let name = try string()
                guard let accelerator = AcceleratorPreference(rawValue: name) else {
                    throw QemuboxError(.invalidConfiguration,
                        "\(source): accelerator = \"\(name)\" is not one of auto, kvm, tcg")
                }
                configuration.accelerator = accelerator
            case "vcpus": configuration.vcpus = try int(1...256)
            case "memory_mib": configuration.memoryMiB = try int(64...1 << 20)
            case "guest_overhead_mib": configuration.guestOverheadMiB = try int(0...1 << 16)
            case "tcg_translation_buffer_mib": configuration.translationBufferMiB = try int(4...4096)
            case "max_vcpus": configuration.maxVCPUs = try int(0...255).nonZero
            case "max_memory_mib": configuration.maxMemoryMiB = try int(0...1 << 22).nonZero
            case "machine":
                let name = try string()
                guard let type = MachineDescription.MachineType(rawValue: name) else {
                    throw QemuboxError(.invalidConfiguration,
                        "\(source): machine = \"\(name)\" is not one of auto, microvm, q35")
                }
                configuration.machineType = type
            case "writable_layer_mib": configuration.writableLayerMiB = try int(0...1 << 24)
            case "state_dir": configuration.stateDirectory = try string()
            case "cache_dir": configuration.cacheDirectory = try string()
            case "boot_timeout_seconds": configuration.bootTimeoutSeconds = try int(1...3600)
            case "shutdown_timeout_seconds": configuration.shutdownTimeoutSeconds = try int(1...3600)
            case "log_level": configuration.logLevel = try string()
            case "guest_debug":
                guard let b = value.bool else { throw wrongType(key, "a boolean", value, source) }
                configuration.guestDebug = b
            case "warm_start":
                guard let b = value.bool else { throw wrongType(key, "a boolean", value, source) }
                configuration.warmStart = b
            case "template_dir": configuration.templateDirectory = try string()
            case "warm_spares": configuration.warmSpares = try int(0...64)
            case "warm_spare_idle_seconds": configuration.warmSpareIdleSeconds = try int(1...86_400)
            case "network":
                guard let network = value.table else { throw wrongType(key, "a table", value, source) }
                configuration.network = try NetworkSettings.parse(network, source: source)
            case "annotations":
                guard let table = value.table else { throw wrongType(key, "a table", value, source) }
                configuration.annotations = try AnnotationPolicy.parse(table, source: source)
            case "jail":
                guard let jail = value.table else { throw wrongType(key, "a table", value, source) }
                configuration.jail = try JailSettings.parse(jail, source: source)
            case "tracing":
                guard let table = value.table else { throw wrongType(key, "a table", value, source) }
                configuration.tracing = try TracingSettings.parse(table, source: source)
            default:
                throw QemuboxError(.invalidConfiguration, "\(source): unknown key \"\(key)\"")
            }
        }
        try configuration.validate(source: source)
        return configuration
    }

    /// Checks values that depend on each other or on the file system.
    public func validate(source: String = "configuration") throws {
        for (key, path) in [("state_dir", stateDirectory), ("cache_dir", cacheDirectory),
                           ("template_dir", templateDirectory), ("network.conf_dir", network.configurationDirectory),
                           ("network.cache_dir", network.cacheDirectory)] + network.binaryDirectories.map({ ("network.bin_dirs", $0) }) where !path.hasPrefix("/") {
            throw QemuboxError(.invalidConfiguration, "\(source): \(key) = \"\(path)\" must be an absolute path")
        }
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        guard levels.contains(logLevel) else {
            throw QemuboxError(.invalidConfiguration,
                "\(source): log_level = \"\(logLevel)\" is not one of \(levels.joined(separator: ", "))")
        }
        guard !qemuBinary.isEmpty else { throw QemuboxError(.invalidConfiguration, "\(source): qemu is empty") }
        if machineType == .microvm, maxVCPUs != nil || maxMemoryMiB != nil {
            throw QemuboxError(.invalidConfiguration,
                "\(source): machine = \"microvm\" cannot hotplug; drop max_vcpus/max_memory_mib or use auto or q35")
        }
        for (key, path) in [("kernel", kernel), ("guest_image", guestImage)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) {
                throw QemuboxError(.invalidConfiguration, "\(source): \(key) = \"\(path)\" is not a readable file")
            }
        }
    }

    /// The template store when ``warmStart`` is on.
    public var templates: VMTemplateStore? {
        warmStart ? VMTemplateStore(directory: templateDirectory) : nil
    }

    /// The guest kernel and system image: the configured paths, else the usual search.
    public func assets(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GuestAssets {
        try GuestAssets.locate(environment: assetsEnvironment(environment))
    }

    /// `environment` with `QEMUBOX_KERNEL` / `QEMUBOX_GUEST_IMAGE` set from ``kernel`` and
    /// ``guestImage`` when configured: what ``GuestAssets`` searches with for this configuration.
    public func assetsEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> [String: String]
    {
        var environment = environment
        if let kernel { environment["QEMUBOX_KERNEL"] = kernel }
        if let guestImage { environment["QEMUBOX_GUEST_IMAGE"] = guestImage }
        return environment
    }
}

/// `[network]`: CNI networks the shim attaches itself to every container that
/// asks for a network namespace of its own, and the NICs a VM is given.
public struct NetworkSettings: Sendable, Hashable {
    /// Names of the conflists to run (in `configurationDirectory`), one interface each; empty: the shim runs no CNI.
    public var networks: [String] = []
    /// Where the conflists are.
    public var configurationDirectory = "/etc/cni/net.d"
    /// Where the plugins are (CNI_PATH), searched in order.
    public var binaryDirectories = ["/opt/cni/bin", "/usr/lib/cni"]
    /// The CNI result cache (what DEL needs, also after a crash).
    public var cacheDirectory = "/var/lib/qemubox/cni"
    /// NICs given to a VM whose namespace is filled after Create (`ctr run --cni`, containerd's CNI).
    public var nicSlots = 1

    /// The defaults.
    public init() {}

    static func parse(_ table: TOMLTable, source: String) throws -> NetworkSettings {
        var settings = NetworkSettings()
        for key in table.keys.sorted() {
            guard let value = table[key] else { continue }
            let name = "network.\(key)"
            func strings() throws -> [String] {
                guard let array = value.array else { throw wrongType(name, "an array of strings", value, source) }
                return try array.map {
                    guard let s = $0.string, !s.isEmpty else { throw wrongType(name, "an array of strings", $0, source) }
                    return s
                }
            }
            switch key {
            case "networks":
                settings.networks = try strings()
                guard Set(settings.networks).count == settings.networks.count, settings.networks.count <= 8 else {
                    throw QemuboxError(.invalidConfiguration, "\(source): \(name) must name at most 8 distinct networks")
                }
            case "conf_dir", "cache_dir":
                guard let s = value.string else { throw wrongType(name, "a string", value, source) }
                if key == "conf_dir" { settings.configurationDirectory = s } else { settings.cacheDirectory = s }
            case "bin_dirs":
                settings.binaryDirectories = try strings()
            case "nic_slots":
                guard let i = value.int else { throw wrongType(name, "an integer", value, source) }
                guard (0...8).contains(i) else {
                    throw QemuboxError(.invalidConfiguration, "\(source): \(name) = \(i) is out of range (0…8)")
                }
                settings.nicSlots = i
            default:
                throw QemuboxError(.invalidConfiguration, "\(source): unknown key \"\(name)\"")
            }
        }
        return settings
    }
}

/// `SOURCE: KEY must be EXPECTED, not A TYPE`.
func wrongType(_ key: String, _ expected: String, _ actual: TOMLValue, _ source: String) -> QemuboxError {
    QemuboxError(.invalidConfiguration, "\(source): \(key) must be \(expected), not \(actual.typeNameWithArticle)")
}

extension String {
    fileprivate var nilIfEmpty: String? { isEmpty ? nil : self }
}

extension Int {
    fileprivate var nonZero: Int? { self == 0 ? nil : self }
}
