/// A ``MachineDescription`` checked against the host: machine type and
/// accelerator decided (each with the reason), ready to render.
public struct ResolvedMachine: Sendable, Hashable {
    /// The validated description.
    public var description: MachineDescription
    /// Machine type actually used.
    public var machineType: MachineDescription.MachineType
    /// Why that machine type.
    public var machineTypeReason: String
    /// Host facts (accelerator decision, TSC frequency).
    public var host: HostFacts

    /// Validates `description` and decides what ``MachineDescription/MachineType/auto`` means.
    public init(_ description: MachineDescription, host: HostFacts) throws {
        try Self.validate(description)
        self.description = description
        self.host = host
        switch description.machineType {
        case .microvm:
            if description.wantsHotplug {
                throw QemuboxError(.invalidDescription,
                                   "microvm cannot hotplug CPUs or memory; use machine type auto or q35 with a hotplug ceiling")
            }
            machineType = .microvm
            machineTypeReason = "microvm requested"
        case .q35:
            machineType = .q35
            machineTypeReason = "q35 requested"
        case .auto:
            if description.wantsHotplug {
                machineType = .q35
                machineTypeReason = "q35: a hotplug ceiling is set and microvm cannot hotplug CPUs or memory"
            } else {
                machineType = .microvm
                machineTypeReason = "microvm: no hotplug ceiling"
            }
        }
    }

    /// A device id QEMU takes: a letter, then `[A-Za-z0-9._-]`.
    static func isValidID(_ id: String) -> Bool {
        id.first?.isLetter == true && id.allSatisfy {
            $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".")
        }
    }

    static func validate(_ d: MachineDescription) throws {
        func bad(_ m: String) -> QemuboxError { QemuboxError(.invalidDescription, "\(d.name): \(m)") }
        let nameOK = !d.name.isEmpty && d.name.count <= 64 && d.name.allSatisfy {
            $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".")
        }
        guard nameOK else { throw bad("name must be 1-64 of [A-Za-z0-9._-]") }
        guard d.vcpus >= 1, d.vcpus <= 255 else { throw bad("vcpus \(d.vcpus) outside 1...255") }
        if let m = d.maxVCPUs, m < d.vcpus || m > 255 {
            throw bad("maxVCPUs \(m) must be in \(d.vcpus)...255")
        }
        guard d.memoryMiB >= 64 else { throw bad("memoryMiB \(d.memoryMiB) below 64") }
        if let m = d.maxMemoryMiB {
            guard m >= d.memoryMiB else { throw bad("maxMemoryMiB \(m) below memoryMiB \(d.memoryMiB)") }
            guard m <= 1 << 22 else { throw bad("maxMemoryMiB \(m) above 4 TiB") }
        }
        guard !d.kernel.kernelPath.isEmpty else { throw bad("no kernel") }
        for word in d.kernel.commandLine where word.isEmpty || word.contains(where: \.isWhitespace) {
            throw bad("kernel command line word '\(word)' is empty or contains whitespace")
        }
        var ids = Set<String>()
        func checkID(_ id: String, _ what: String) throws {
            guard isValidID(id) else { throw bad("\(what) id '\(id)' must start with a letter and use [A-Za-z0-9._-]") }
            guard ids.insert(id).inserted else { throw bad("duplicate id '\(id)'") }
        }
        if let file = d.memoryFile, file.path.isEmpty || file.path.contains(",") {
            throw bad("memory file: path empty or has a comma")
        }
        if !d.sharedDirectories.isEmpty, let file = d.memoryFile, !file.shared {
            throw bad("shared directories need shared guest memory (vhost-user): the memory file is private")
        }
        var tags = Set<String>()
        for share in d.sharedDirectories {
            guard !share.tag.isEmpty, share.tag.utf8.count <= 36,
                  share.tag.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }),
                  tags.insert(share.tag).inserted else {
                throw bad("shared directory tag '\(share.tag)' must be unique, 1-36 of [A-Za-z0-9_-]")
            }
            guard share.path.hasPrefix("/"), !share.path.contains(",") else {
                throw bad("shared directory \(share.tag): path must be absolute without commas")
            }
            for change in share.capabilityChanges {
                guard change.count > 1, change.first == "+" || change.first == "-",
                      change.dropFirst().allSatisfy({ $0.isASCII && ($0.isLowercase || $0 == "_") }) else {
                    throw bad("shared directory \(share.tag): capability change '\(change)' is not +name or -name")
                }
            }
        }
        for disk in d.disks {
            try checkID(disk.id, "disk")
            guard disk.emptyBytes != nil || (!disk.path.isEmpty && !disk.path.contains(",")) else {
                throw bad("disk \(disk.id): path empty or has a comma")
            }
            if disk.aio == .native && !disk.cache.isDirect {
                throw bad("disk \(disk.id): aio=native needs cache=none or directsync (O_DIRECT)")
            }
        }
        for nic in d.nics {
            try checkID(nic.id, "nic")
            if let mac = nic.mac {
                let parts = mac.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 6, parts.allSatisfy({ $0.count == 2 && UInt8($0, radix: 16) != nil }) else {
                    throw bad("nic \(nic.id): bad MAC '\(mac)'")
                }
            }
            switch nic.backend {
            case .tapDescriptor(let fd) where fd < 0: throw bad("nic \(nic.id): negative descriptor")
            case .tapName(let n) where n.isEmpty || n.count > 15 || n.contains(","):
                throw bad("nic \(nic.id): TAP name '\(n)' invalid")
            default: break
            }
            if let mtu = nic.mtu, !(68...65535).contains(mtu) { throw bad("nic \(nic.id): MTU \(mtu) out of range") }
        }
        var names = Set<String>()
        for port in d.serialPorts {
            guard !port.name.isEmpty, !port.name.contains(","), names.insert(port.name).inserted else {
                throw bad("serial port name '\(port.name)' empty, duplicate or has a comma")
            }
            guard !port.socketPath.isEmpty, !port.socketPath.contains(","), port.socketPath.utf8.count < 108 else {
                throw bad("serial port \(port.name): socket path empty, has a comma or is too long for sun_path")
            }
        }
        if let v = d.vsock, v.guestCID < 3 { throw bad("vsock guest CID \(v.guestCID) must be ≥ 3") }
        for path in [d.kernel.kernelPath] + (d.kernel.initrdPath.map { [$0] } ?? []) where path.contains(",") {
            throw bad("path '\(path)' contains a comma")
        }
        guard d.console.maxLogBytes >= 4096, d.console.memoryTailBytes >= 1024 else {
            throw bad("console limits too small")
        }
    }
}
