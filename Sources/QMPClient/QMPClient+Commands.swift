/// Typed wrappers of the commands qemubox uses. Anything else: ``QMPClient/execute(_:arguments:timeout:)``.
extension QMPClient {
    /// `query-status`: run state of the machine.
    public func queryStatus() async throws -> StatusInfo {
        try await execute("query-status", as: StatusInfo.self)
    }

    /// `stop`: pause the vCPUs.
    public func stop() async throws { _ = try await execute("stop") }

    /// `cont`: resume the vCPUs (also leaves `-S` prelaunch).
    public func cont() async throws { _ = try await execute("cont") }

    /// `system_powerdown`: press the ACPI power button; the guest decides.
    public func systemPowerdown() async throws { _ = try await execute("system_powerdown") }

    /// `system_reset`: reset the machine.
    public func systemReset() async throws { _ = try await execute("system_reset") }

    /// `quit`: QEMU exits at once (the guest gets no say). QEMU may close the socket
    /// before or after answering; both count as success.
    public func quit() async throws {
        do {
            _ = try await execute("quit")
        } catch let e as QMPError where e.code == .connectionClosed {
            return
        }
    }

    /// `query-cpus-fast`: the present vCPUs.
    public func queryCPUsFast() async throws -> [CPUInfoFast] {
        try await execute("query-cpus-fast", as: [CPUInfoFast].self)
    }

    /// `query-hotpluggable-cpus`: CPU slots, plugged or free. Fails with a
    /// `GenericError` on machines without CPU hotplug (e.g. microvm).
    public func queryHotpluggableCPUs() async throws -> [HotpluggableCPU] {
        try await execute("query-hotpluggable-cpus", as: [HotpluggableCPU].self)
    }

    /// `device_add`: plug a device. `properties` are the driver's own (e.g. `memdev`, `socket-id`).
    public func deviceAdd(driver: String, id: String, properties: [String: JSONValue] = [:]) async throws {
        var args = properties
        args["driver"] = .string(driver)
        args["id"] = .string(id)
        _ = try await execute("device_add", arguments: .object(args))
    }

    /// `device_del`: request an unplug. Completion is the `DEVICE_DELETED` event,
    /// which needs guest cooperation for ACPI/PCI devices.
    public func deviceDel(id: String) async throws {
        _ = try await execute("device_del", arguments: ["id": .string(id)])
    }

    /// `object-add`: create a backend object (e.g. `memory-backend-ram` with `size`).
    public func objectAdd(qomType: String, id: String, properties: [String: JSONValue] = [:]) async throws {
        var args = properties
        args["qom-type"] = .string(qomType)
        args["id"] = .string(id)
        _ = try await execute("object-add", arguments: .object(args))
    }

    /// `object-del`: destroy a backend object.
    public func objectDel(id: String) async throws {
        _ = try await execute("object-del", arguments: ["id": .string(id)])
    }

    /// `query-memory-devices`: plugged memory devices.
    public func queryMemoryDevices() async throws -> [MemoryDeviceInfo] {
        try await execute("query-memory-devices", as: [MemoryDeviceInfo].self)
    }

    /// `query-memory-size-summary`: boot and plugged memory.
    public func queryMemorySizeSummary() async throws -> MemorySizeSummary {
        try await execute("query-memory-size-summary", as: MemorySizeSummary.self)
    }

    /// `chardev-add` with a raw `ChardevBackend` object, e.g.
    /// `["type": "socket", "data": ["addr": ["type": "unix", "data": ["path": p]], "server": true, "wait": false]]`.
    @discardableResult
    public func chardevAdd(id: String, backend: JSONValue) async throws -> ChardevAddResult {
        try await execute("chardev-add", arguments: ["id": .string(id), "backend": backend],
                          as: ChardevAddResult.self)
    }

    /// `chardev-remove`.
    public func chardevRemove(id: String) async throws {
        _ = try await execute("chardev-remove", arguments: ["id": .string(id)])
    }

    /// `human-monitor-command`: an HMP line, for diagnostics only (output is unstructured).
    public func humanMonitorCommand(_ line: String) async throws -> String {
        try await execute("human-monitor-command", arguments: ["command-line": .string(line)], as: String.self)
    }
}

/// Migration: what saving and restoring a machine (snapshot, template clone) needs.
extension QMPClient {
    /// `migrate-set-capabilities`: e.g. `["x-ignore-shared": true]` (RAM in a shared
    /// memory-backend-file is left out of the stream). Set on both ends before migrating.
    public func migrateSetCapabilities(_ capabilities: [String: Bool]) async throws {
        let list: [JSONValue] = capabilities.keys.sorted().map { name in
            .object(["capability": .string(name), "state": .bool(capabilities[name] ?? false)])
        }
        _ = try await execute("migrate-set-capabilities", arguments: ["capabilities": .array(list)])
    }

    /// `migrate`: start an outgoing migration to `uri` (`exec:…`, `unix:…`, `fd:…`);
    /// returns at once, completion shows in ``queryMigrate()``.
    public func migrate(uri: String) async throws {
        _ = try await execute("migrate", arguments: ["uri": .string(uri)])
    }

    /// `migrate-incoming`: start the incoming side of a QEMU started with `-incoming defer`.
    public func migrateIncoming(uri: String) async throws {
        _ = try await execute("migrate-incoming", arguments: ["uri": .string(uri)])
    }

    /// `query-migrate`: the migration's status.
    public func queryMigrate() async throws -> MigrationInfo {
        try await execute("query-migrate", as: MigrationInfo.self)
    }

    /// Polls ``queryMigrate()`` every `interval` until the migration has ended;
    /// throws ``QMPError`` with code `.commandFailed` when it failed or was cancelled,
    /// `.timeout` after `timeout`.
    public func waitForMigration(timeout: Duration = .seconds(60), interval: Duration = .milliseconds(2)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            let info = try await queryMigrate()
            if info.status == "completed" { return }
            if info.isFinished {
                throw QMPError(.commandFailed, "migration \(info.status ?? "?"): \(info.errorDescription ?? "no reason given")")
            }
            guard ContinuousClock.now < deadline else {
                throw QMPError(.timeout, "migration still \(info.status ?? "not started") after \(timeout)")
            }
            try await Task.sleep(for: interval)
        }
    }
}
