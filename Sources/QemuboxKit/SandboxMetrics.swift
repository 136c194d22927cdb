import CoreMetrics

/// What QemuboxKit reports through swift-metrics: a no-op until the program bootstraps a
/// backend (the shim bootstraps Prometheus; `Documentation/operations.md#metrics`).
///
/// - `qemubox_vm_start_duration_seconds{mode="boot"|"restore"}`: QEMU start to the guest
///   agent's first answer (a timer: a histogram in Prometheus);
/// - `qemubox_vm_start_failures_total{mode=…}`: starts that failed.
public enum SandboxMetrics {
    static func mode(_ restored: Bool) -> [(String, String)] { [("mode", restored ? "restore" : "boot")] }

    static func started(restored: Bool, after duration: Duration) {
        Timer(label: "qemubox_vm_start_duration_seconds", dimensions: mode(restored))
            .recordNanoseconds(nanoseconds(duration))
    }

    /// A duration in whole nanoseconds (saturating).
    public static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : whole.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }

    static func failed(restored: Bool) {
        Counter(label: "qemubox_vm_start_failures_total", dimensions: mode(restored)).increment()
    }
}
