#!/usr/bin/env python3
"""Generates typed ttrpc client and server stubs (Swift) for the services in
the given .proto files, on top of TTRPCCodec. Usage:
    generate-ttrpc-stubs.py OUT_DIR FILE.proto...
Only what qemubox's protos use is understood: `package`, `service`, and
`rpc Name(Req) returns ([stream ]Resp);` (unary and server-streaming)."""
import re
import sys
from pathlib import Path

RPC = re.compile(r"rpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)")


def swift_type(name: str, package: str) -> str:
    if name.startswith("google.protobuf."):
        return "SwiftProtobuf.Google_Protobuf_" + name.split(".")[-1]
    if "." not in name:
        name = package + "." + name
    parts = name.split(".")
    prefix = "_".join(p[:1].upper() + p[1:] for p in parts[:-1])
    return prefix + "_" + parts[-1]


def lower_first(s: str) -> str:
    return s[:1].lower() + s[1:]


def server_signature(rpc: str, kind: str, req: str, resp: str) -> str:
    if kind == "unary":
        return f"{lower_first(rpc)}(_ request: {req}, context: TTRPCRequestContext) async throws -> {resp}"
    return (f"{lower_first(rpc)}(_ request: {req}, context: TTRPCRequestContext, "
            f"writer: TTRPCMessageWriter<{resp}>) async throws")


def generate(proto: Path) -> tuple[str, str]:
    text = re.sub(r"//[^\n]*", "", proto.read_text())
    package = re.search(r"^\s*package\s+([\w.]+)\s*;", text, re.M).group(1)
    out = []
    for svc in re.finditer(r"service\s+(\w+)\s*\{(.*?)\}", text, re.S):
        name, body = svc.group(1), svc.group(2)
        full = f"{package}.{name}"
        swift = "".join(p[:1].upper() + p[1:] for p in package.split(".")) + name
        rpcs = []
        for m in RPC.finditer(body):
            if m.group(2) or m.group(4):
                kind = {(True, False): "clientStreaming", (False, True): "serverStreaming",
                        (True, True): "bidirectionalStreaming"}[(bool(m.group(2)), bool(m.group(4)))]
            else:
                kind = "unary"
            rpcs.append((m.group(1), kind, swift_type(m.group(3), package), swift_type(m.group(5), package)))
        if any(k not in ("unary", "serverStreaming") for _, k, _, _ in rpcs):
            raise SystemExit(f"{full}: only unary and server-streaming rpcs are supported by this generator")
        out.append(f"// MARK: {full}\n")
        out.append(f"/// Server side of `{full}`. Every method defaults to `Unimplemented`;")
        out.append("/// implement the ones you serve and register ``ttrpcService``.")
        out.append(f"public protocol {swift}Service: Sendable {{")
        for rpc, kind, req, resp in rpcs:
            out.append(f"    /// `{full}/{rpc}`.")
            out.append(f"    func {server_signature(rpc, kind, req, resp)}")
        out.append("}\n")
        out.append(f"extension {swift}Service {{")
        out.append(f"    /// The fully qualified service name, `{full}`.")
        out.append(f"    public static var ttrpcServiceName: String {{ \"{full}\" }}\n")
        for rpc, kind, req, resp in rpcs:
            out.append(f"    public func {server_signature(rpc, kind, req, resp)} {{")
            out.append(f"        throw TTRPCError(.unimplemented, \"{full}/{rpc} is not implemented\")")
            out.append("    }\n")
        out.append("    /// This implementation as a service for ``TTRPCServer``.")
        out.append("    public var ttrpcService: TTRPCService {")
        out.append(f"        TTRPCService(name: \"{full}\", methods: [")
        for rpc, kind, req, resp in rpcs:
            if kind == "unary":
                out.append(f"            \"{rpc}\": .unary({req}.self, {resp}.self) {{ [self] in try await self.{lower_first(rpc)}($0, context: $1) }},")
            else:
                out.append(f"            \"{rpc}\": .serverStreaming({req}.self, {resp}.self) {{ [self] in try await self.{lower_first(rpc)}($0, context: $1, writer: $2) }},")
        out.append("        ])")
        out.append("    }")
        out.append("}\n")
        out.append(f"/// Typed client for `{full}`.")
        out.append(f"public struct {swift}Client: Sendable {{")
        out.append("    /// The connection calls go over.")
        out.append("    public let client: TTRPCClient\n")
        out.append("    /// Wraps a connected client.")
        out.append("    public init(_ client: TTRPCClient) { self.client = client }\n")
        for rpc, kind, req, resp in rpcs:
            out.append(f"    /// Calls `{full}/{rpc}`.")
            if kind == "unary":
                out.append(f"    public func {lower_first(rpc)}(_ request: {req}, options: TTRPCCallOptions = TTRPCCallOptions()) async throws -> {resp} {{")
                out.append(f"        try await client.call(service: \"{full}\", method: \"{rpc}\", request: request, as: {resp}.self, options: options)")
            else:
                out.append(f"    public func {lower_first(rpc)}(_ request: {req}, options: TTRPCCallOptions = TTRPCCallOptions()) async throws")
                out.append(f"        -> AsyncThrowingMapSequence<TTRPCStreamMessages, {resp}> {{")
                out.append(f"        try await client.serverStream(service: \"{full}\", method: \"{rpc}\", request: request, as: {resp}.self, options: options)")
            out.append("    }\n")
        out.append("}\n")
    name = proto.stem
    header = (f"// Generated by scripts/generate-ttrpc-stubs.py from {proto.name}. Do not edit.\n\n"
              # FoundationEssentials where it exists: the static guest (vminitd) links
              # no ICU (Documentation/performance.md, "Guest agent start").
              "#if canImport(FoundationEssentials)\nimport FoundationEssentials\n#else\nimport Foundation\n#endif\n"
              "import SwiftProtobuf\nimport TTRPCCodec\n\n")
    return name, header + "\n".join(out)


def main() -> None:
    out_dir = Path(sys.argv[1])
    for path in sys.argv[2:]:
        name, code = generate(Path(path))
        dest = out_dir / f"{Path(path).parent.name}_{name}.ttrpc.swift"
        dest.write_text(code)
        print(f"wrote {dest}")


if __name__ == "__main__":
    main()
