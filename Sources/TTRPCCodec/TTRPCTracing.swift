import Instrumentation
import ServiceContextModule
import Tracing

/// Trace context across ttrpc, through swift-distributed-tracing: a client call carries the
/// current `ServiceContext` in the request's metadata (the bootstrapped instrument decides
/// how; an OpenTelemetry tracer writes W3C `traceparent`), and a server with
/// ``TTRPCServer/Configuration/tracesRequests`` runs each handler in a server span whose
/// parent is what the metadata carried. With no instrument bootstrapped (swift-distributed-
/// tracing's no-op) nothing is added and the cost is one task-local read per call.
enum TTRPCTracing {
    /// `metadata` plus the current trace context (unchanged without one).
    static func inject(into metadata: inout TTRPCMetadata) {
        guard let context = ServiceContext.current else { return }
        InstrumentationSystem.instrument.inject(context, into: &metadata, using: MetadataInjector())
    }

    /// Runs `body` in a server span named `service/method`, under the context `metadata` carries.
    static func serve<T: Sendable>(_ request: TTRPCRequestContext, _ body: () async throws -> T) async throws -> T {
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(request.metadata, into: &context, using: MetadataExtractor())
        return try await withSpan("\(request.service)/\(request.method)", context: context, ofKind: .server) { span in
            span.attributes["rpc.system"] = "ttrpc"
            span.attributes["rpc.service"] = request.service
            span.attributes["rpc.method"] = request.method
            do {
                return try await body()
            } catch {
                let status = TTRPCError.from(error)
                span.attributes["rpc.grpc.status_code"] = Int64(status.code.rawValue)
                throw error
            }
        }
    }

    struct MetadataInjector: Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout TTRPCMetadata) {
            carrier.set([value], for: key)
        }
    }

    struct MetadataExtractor: Extractor {
        func extract(key: String, from carrier: TTRPCMetadata) -> String? { carrier[key] }
    }
}
