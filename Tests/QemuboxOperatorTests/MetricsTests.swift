import ContainerdTestSupport
import Foundation
@testable import QemuboxOperator
import TestSupport
import Testing

/// `qemubox metrics`: the merge of shims' expositions, and a real scrape of two running
/// containers read by Prometheus' own Python parser (`prometheus_client`, Debian's
/// python3-prometheus-client), printed once and served over HTTP.
@Suite(.serialized) struct MetricsTests {
    /// Debian's Python, where python3-prometheus-client lives (not a pyenv on PATH).
    static let python = "/usr/bin/python3"

    static var parserAvailable: Bool {
        if Prerequisite.isCI { return true }
        let ok = FileManager.default.isExecutableFile(atPath: python)
            && (try? Shell.runBlocking("\(python) -c 'import prometheus_client'", environment: [:], stdin: nil,
                                       timeout: .seconds(30)).status) == 0
        if !ok { FileHandle.standardError.write(Data("SKIP: python3-prometheus-client is not installed\n".utf8)) }
        return ok
    }

    /// One parsed sample: name, labels, value.
    struct Sample: Decodable, Sendable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    /// Parses an exposition with prometheus_client (from a file, or fetched from a URL): every
    /// sample, with its family's type; exits non-zero when the text does not parse.
    static func parse(_ source: String) async throws -> (samples: [Sample], types: [String: String]) {
        let script = """
            import json, sys, urllib.request
            from prometheus_client.parser import text_string_to_metric_families
            src = sys.argv[1]
            if src.startswith("http://"):
                with urllib.request.urlopen(src, timeout=60) as r:
                    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
                    text = r.read().decode()
            else:
                text = open(src).read()
            out = {"samples": [], "types": {}}
            for family in text_string_to_metric_families(text):
                out["types"][family.name] = family.type
                for s in family.samples:
                    out["samples"].append({"name": s.name, "labels": s.labels, "value": s.value})
            print(json.dumps(out))
            """
        let result = try await Shell.run("\(python) -c \(Shell.quote(script)) \(Shell.quote(source))")
        try #require(result.status == 0, "prometheus_client could not parse it: \(result.stderr)")
        struct Parsed: Decodable { var samples: [Sample]; var types: [String: String] }
        let parsed = try JSONDecoder().decode(Parsed.self, from: Data(result.stdout.utf8))
        return (parsed.samples, parsed.types)
    }

    @Test func mergeLabelsEverySampleAndGroupsFamilies() {
        var exposition = PrometheusExposition()
        let shim = """
            # TYPE requests_total counter
            requests_total{method="Create",code="OK"} 1
            # HELP start_seconds VM start
            # TYPE start_seconds histogram
            start_seconds_bucket{mode="boot",le="1.0"} 0
            start_seconds_bucket{mode="boot",le="+Inf"} 1
            start_seconds_sum{mode="boot"} 2.5
            start_seconds_count{mode="boot"} 1
            # TYPE vcpus gauge
            vcpus 2.0
            not a sample
            broken{unclosed="x 1
            """
        exposition.add(shim[...], labels: [("namespace", "default"), ("id", "a")])
        exposition.add(shim[...], labels: [("namespace", "default"), ("id", "b\"\\\n")])
        #expect(exposition.names == ["requests_total", "start_seconds", "vcpus"])
        #expect(exposition.malformed == 4)
        let text = exposition.text
        #expect(text.contains("requests_total{namespace=\"default\",id=\"a\",method=\"Create\",code=\"OK\"} 1\n"))
        #expect(text.contains("vcpus{namespace=\"default\",id=\"b\\\"\\\\\\n\"} 2.0\n"))
        #expect(text.components(separatedBy: "# TYPE start_seconds histogram").count == 2)
        // Both shims' histogram lines follow the one TYPE line, before the next family.
        let family = text.components(separatedBy: "# TYPE start_seconds histogram\n")[1]
            .components(separatedBy: "# TYPE vcpus")[0]
        #expect(family.split(separator: "\n").count == 8)
        #expect(family.contains("start_seconds_sum{namespace=\"default\",id=\"b\\\"\\\\\\n\",mode=\"boot\"} 2.5"))
    }

    @Test(.enabled(if: OperatorVMTests.available && parserAvailable))
    func scrapeOfTwoRunningContainers() async throws {
        try await ConcurrencyLimit.vms.run {
            try await OperatorVMTests.withContainerd("") { containerd in
                let config = containerd.dir + "/qemubox.toml"
                let runtime = OperatorVMTests.runtime
                for (id, options) in [("met1", ""), ("met2", "--memory-limit 268435456")] {
                    let run = try await containerd.ctr("run -d \(runtime) \(options) \(PrivateContainerd.image) \(id) sleep 600")
                    #expect(run.status == 0, "\(run.stderr)")
                }
                // A call that fails: an exec of a program the image lacks.
                let exec = try await containerd.ctr("task exec --exec-id bad met1 /nonexistent")
                #expect(exec.status != 0)

                let result = try await QemuboxBinary.run(["metrics", "--config", config])
                #expect(result.status == 0, "\(result.stderr)")
                let file = containerd.dir + "/metrics.txt"
                try result.stdout.write(toFile: file, atomically: true, encoding: .utf8)
                let (samples, types) = try await Self.parse(file)
                func value(_ name: String, _ labels: [String: String]) -> Double? {
                    samples.first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
                }
                let ns = containerd.namespace
                #expect(value("qemubox_vms", [:]) == 2)
                #expect(types["qemubox_shim_requests"] == "counter")
                #expect(types["qemubox_shim_request_duration_seconds"] == "histogram")
                for id in ["met1", "met2"] {
                    let vm = ["namespace": ns, "id": id]
                    #expect(value("qemubox_shim_scrape_success", vm) == 1)
                    #expect(value("qemubox_shim_requests_total", vm.merging(["method": "Create", "code": "OK"]) { $1 }) == 1)
                    #expect(value("qemubox_shim_request_duration_seconds_count", vm.merging(["method": "Create"]) { $1 }) == 1)
                    #expect(value("qemubox_vm_start_duration_seconds_count", vm.merging(["mode": "boot"]) { $1 }) == 1)
                    #expect((value("qemubox_vm_start_duration_seconds_sum", vm) ?? 0) > 0.1)
                    #expect((value("qemubox_qemu_resident_bytes", vm) ?? 0) > 16 * 1_048_576)
                    #expect((value("qemubox_qemu_cpu_seconds", vm) ?? 0) > 0)
                    #expect(value("qemubox_vm_vcpus", vm) == 1)
                    #expect((value("qemubox_container_cpu_seconds", vm.merging(["container": id]) { $1 }) ?? 0) > 0)
                    #expect((value("qemubox_container_memory_bytes", vm.merging(["container": id]) { $1 }) ?? 0) > 0)
                }
                #expect(value("qemubox_container_memory_limit_bytes", ["id": "met2"]) == 268_435_456)
                #expect(value("qemubox_container_memory_limit_bytes", ["id": "met1"]) == 0)
                #expect(value("qemubox_vm_memory_bytes", ["id": "met2"]) == Double((256 + 128) << 20))
                // The failed exec is counted under its error code.
                let failed = samples.filter {
                    $0.name == "qemubox_shim_requests_total" && $0.labels["id"] == "met1" && $0.labels["code"] != "OK"
                }
                #expect(!failed.isEmpty && failed.allSatisfy { $0.value >= 1 }, "\(samples.filter { $0.labels["id"] == "met1" && $0.name.hasPrefix("qemubox_shim_requests") })")

                // Served: one HTTP scrape, parsed the same way.
                try await Self.served(config: config, dir: containerd.dir) { url in
                    let (served, _) = try await Self.parse(url)
                    #expect(served.contains { $0.name == "qemubox_vms" && $0.value == 2 })
                    #expect(served.filter { $0.name == "qemubox_shim_scrape_success" && $0.value == 1 }.count == 2)
                    let missing = try await Shell.run("\(Self.python) -c \(Shell.quote("import urllib.request, sys\ntry:\n urllib.request.urlopen(sys.argv[1])\nexcept urllib.error.HTTPError as e:\n print(e.code)")) \(url.replacingOccurrences(of: "/metrics", with: "/nope"))")
                    #expect(missing.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "404")
                }
            }
        }
    }

    /// Runs `qemubox metrics --listen 127.0.0.1:0` for `body` (given the URL it serves), then
    /// stops it by its pid.
    static func served(config: String, dir: String, _ body: (String) async throws -> Void) async throws {
        let binary = try #require(QemuboxBinary.path)
        let log = dir + "/metrics-server.log"
        let pidText = try await Shell.check(
            "{ \(binary) metrics --config \(config) --listen 127.0.0.1:0 </dev/null >/dev/null 2>\(log) & echo $!; }")
        let pid = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
        do {
            var url: String?
            let up = await eventually(timeout: .seconds(30)) {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                guard let range = text.range(of: "http://") else { return false }
                url = String(text[range.lowerBound...].prefix { !$0.isWhitespace })
                return true
            }
            try #require(up, "the metrics server did not say where it listens: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            try await body(try #require(url))
        } catch {
            await stop(pid)
            throw error
        }
        await stop(pid)
        #expect(kill(pid, 0) != 0, "qemubox metrics --listen did not exit on SIGTERM")
    }

    /// SIGTERM, then SIGKILL after 10 s (it is not our child: the shell that started it was).
    static func stop(_ pid: Int32) async {
        kill(pid, SIGTERM)
        if await eventually(timeout: .seconds(10), { kill(pid, 0) != 0 }) { return }
        kill(pid, SIGKILL)
        _ = await eventually(timeout: .seconds(10)) { kill(pid, 0) != 0 }
    }
}
