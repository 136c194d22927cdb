#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OCISpec
import QemuboxAPI
import QemuboxKit
import Testing

/// Execs in a ``Pod``'s containers, with their output collected in a file.
enum PodExec {
    /// Runs `args` as an exec in container `id` (its output in `dir/<exec id>.out`) and
    /// returns its exit status and output, read once the output relay has finished.
    static func run(_ pod: Pod, _ id: String, _ args: [String], execID: String? = nil,
                    in dir: String) async throws -> (status: UInt32, output: String) {
        let execID = execID ?? "e\(UInt32.random(in: 1...UInt32.max))"
        let path = dir + "/\(execID).out"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(fd) }
        var request = Containerd_Task_V2_ExecProcessRequest()
        request.id = id
        request.execID = execID
        request.spec.typeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
        request.spec.value = try JSONEncoder().encode(RuntimeSpec.Process(args: args, env: ["PATH=/bin:/usr/bin"], cwd: "/"))
        let io = DescriptorIO(stdin: nil, stdout: fd, stderr: fd)
        try await pod.exec(request, io: io)
        try await pod.start(containerID: id, execID: execID)
        let status = try await pod.wait(containerID: id, execID: execID).status
        // The exit can overtake the last output: read the file once the relay has finished.
        #expect(await io.waitOutput(timeout: .seconds(10)), "the output of \(args) was relayed")
        _ = try await pod.delete(containerID: id, execID: execID)
        return (status, (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }
}
