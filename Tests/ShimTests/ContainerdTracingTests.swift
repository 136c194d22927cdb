import ContainerdTestSupport
import Foundation
import TestSupport
import Testing

/// Tracing end to end: a private containerd whose qemubox configuration names a local OTLP/HTTP
/// receiver (`[tracing]`, JSON encoding) runs one `ctr run`; the shim exports its spans, and the
/// guest's (recorded by vminitd under the `traceparent` the shim sent over ttrpc, replayed by
/// the shim) join them in the same trace, down to the crun call.
@Suite(.serialized) struct ContainerdTracingTests {
    /// A span as the receiver below flattens it.
    struct Span: Decodable, Sendable {
        var service: String
        var traceId: String
        var spanId: String
        var parentSpanId: String
        var name: String
        var attributes: [String: String]
    }

    /// An OTLP/HTTP JSON receiver on 127.0.0.1 (port chosen by the kernel, written to
    /// `port`): each span of each POST to /v1/traces becomes one JSON line in `spans.jsonl`.
    static let receiver = """
        import json, sys, http.server
        out, portfile = sys.argv[1], sys.argv[2]
        def value(v):
            for k in ("stringValue", "boolValue", "intValue", "doubleValue"):
                if k in v: return str(v[k]).lower() if k == "boolValue" else str(v[k])
            return json.dumps(v)
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = self.path == "/v1/traces" and self.headers.get("Content-Type", "").startswith("application/json")
                if ok:
                    req = json.loads(body)
                    with open(out, "a") as f:
                        for rs in req.get("resourceSpans", []):
                            attrs = {a["key"]: value(a["value"]) for a in rs.get("resource", {}).get("attributes", [])}
                            for ss in rs.get("scopeSpans", []):
                                for s in ss.get("spans", []):
                                    f.write(json.dumps({"service": attrs.get("service.name", ""),
                                        "traceId": s.get("traceId", ""), "spanId": s.get("spanId", ""),
                                        "parentSpanId": s.get("parentSpanId", ""), "name": s.get("name", ""),
                                        "attributes": {a["key"]: value(a["value"]) for a in s.get("attributes", [])}}) + "\\n")
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            def log_message(self, *args): pass
        server = http.server.HTTPServer(("127.0.0.1", 0), H)
        open(portfile + ".tmp", "w").write(str(server.server_address[1]))
        import os; os.rename(portfile + ".tmp", portfile)
        server.serve_forever()
        """

    static func spans(_ file: String) -> [Span] {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(Span.self, from: Data($0.utf8)) }
    }

    @Test(.enabled(if: PrivateContainerd.vmAvailable))
    func oneCtrRunIsOneTraceFromShimToCrun() async throws {
        try await TemporaryDirectory.with(prefix: "qbx-otlp") { dir in
            try Self.receiver.write(toFile: dir + "/receiver.py", atomically: true, encoding: .utf8)
            let pidText = try await Shell.check(
                "{ python3 \(dir)/receiver.py \(dir)/spans.jsonl \(dir)/port </dev/null >\(dir)/receiver.log 2>&1 & echo $!; }")
            let pid = try #require(Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines)))
            defer { kill(pid, SIGKILL) }
            let listening = await eventually(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: dir + "/port") }
            try #require(listening, "the OTLP receiver did not start: \((try? String(contentsOfFile: dir + "/receiver.log", encoding: .utf8)) ?? "")")
            let port = try String(contentsOfFile: dir + "/port", encoding: .utf8)

            try await ConcurrencyLimit.vms.run {
                let tracing = "[tracing]\nendpoint = \"http://127.0.0.1:\(port)\"\nprotocol = \"http/json\"\n"
                try await ContainerdShimTests.withContainerd(qemubox: tracing) { containerd in
                    let run = try await containerd.ctr("run --rm \(ContainerdShimTests.qemubox) \(PrivateContainerd.image) traced true")
                    #expect(run.status == 0, "\(run.stderr) \(containerd.log())")
                    // The shim exports at the latest when it exits after the task's delete.
                    let complete = await eventually(timeout: .seconds(60)) {
                        let spans = Self.spans(dir + "/spans.jsonl")
                        return spans.contains { $0.name == "crun create" }
                            && spans.contains { $0.name == "containerd.task.v2.Task/Shutdown" }
                    }
                    let spans = Self.spans(dir + "/spans.jsonl")
                    #expect(complete, "spans: \(spans.map { "\($0.name) \($0.attributes)" })")

                    let shimCreate = try #require(spans.first {
                        $0.name == "containerd.task.v2.Task/Create" && $0.attributes["qemubox.guest"] == nil
                    }, "no shim Create span in \(spans.map(\.name))")
                    #expect(shimCreate.service == "qemubox-shim")
                    #expect(spans.contains { $0.name == "qemubox.vm.boot" && $0.traceId == shimCreate.traceId })
                    let trace = spans.filter { $0.traceId == shimCreate.traceId }
                    let guest = trace.filter { $0.attributes["qemubox.guest"] == "true" }
                    let host = trace.filter { $0.attributes["qemubox.guest"] == nil }
                    // The guest's server span for the create runs under a shim span of the same trace,
                    let guestCreate = try #require(guest.first { $0.name == "containerd.task.v2.Task/Create" },
                                                   "guest spans in the trace: \(guest.map(\.name))")
                    #expect(host.contains { $0.spanId == guestCreate.parentSpanId })
                    // and crun's create runs under it, in the guest.
                    let crun = try #require(guest.first { $0.name == "crun create" })
                    #expect(crun.parentSpanId == guestCreate.spanId)
                    // Each span exported once (the shim's last export comes with Shutdown, its last call).
                    #expect(Set(spans.map(\.spanId)).count == spans.count, "span ids are unique")
                    // Start and Delete are traces of their own, each reaching the guest: Start runs
                    // crun there; Delete of the VM's last container exports its writable layer (no
                    // `crun delete`: its init has exited with its PID namespace, and the VM goes
                    // next). Not the Unmount after it: QEMU quits right after that call, and the
                    // guest's batch of its spans may not have left the guest by then.
                    for (call, guestCall) in [("Start", "crun start"), ("Delete", "qemubox.guest.v1.System/ExportChanges")] {
                        let server = try #require(spans.first {
                            $0.name == "containerd.task.v2.Task/\(call)" && $0.attributes["qemubox.guest"] == nil
                        })
                        #expect(spans.contains { $0.name == guestCall && $0.traceId == server.traceId },
                                "\(call): \(spans.filter { $0.traceId == server.traceId }.map(\.name))")
                    }
                    #expect(!spans.contains { $0.name == "crun delete" })
                }
            }
        }
    }
}
