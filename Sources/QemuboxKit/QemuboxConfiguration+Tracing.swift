import Foundation

/// `[tracing]`: where the shim sends its traces (OpenTelemetry, OTLP over HTTP). Off unless an
/// endpoint is set here or in the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (containerd passes its environment to the shims).
///
/// ```toml
/// [tracing]
/// endpoint = "http://127.0.0.1:4318"   # an OTLP/HTTP receiver (the collector's default port)
/// protocol = "http/protobuf"           # or "http/json"
/// ```
public struct TracingSettings: Sendable, Hashable {
    /// The OTLP/HTTP receiver's base URL (`/v1/traces` is added); nil: off.
    public var endpoint: String?
    /// The OTLP encoding.
    public var encoding = Encoding.protobuf

    /// OTLP over HTTP's two encodings.
    public enum Encoding: String, Sendable, Hashable, CaseIterable {
        case protobuf = "http/protobuf"
        case json = "http/json"
    }

    /// The defaults: off.
    public init() {}

    /// Whether traces are exported: an endpoint here, or one in the OTel environment variables.
    public func enabled(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        endpoint != nil || ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
            .contains { !(environment[$0] ?? "").isEmpty }
    }

    static func parse(_ table: TOMLTable, source: String) throws -> TracingSettings {
        var settings = TracingSettings()
        for key in table.keys.sorted() {
            guard let value = table[key] else { continue }
            let name = "tracing.\(key)"
            guard let text = value.string else { throw wrongType(name, "a string", value, source) }
            switch key {
            case "endpoint":
                guard !text.isEmpty else { continue }
                guard let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                    throw QemuboxError(.invalidConfiguration, "\(source): \(name) = \"\(text)\" is not an http(s) URL")
                }
                settings.endpoint = text
            case "protocol":
                guard let encoding = Encoding(rawValue: text) else {
                    throw QemuboxError(.invalidConfiguration,
                        "\(source): \(name) = \"\(text)\" is not one of http/protobuf, http/json")
                }
                settings.encoding = encoding
            default:
                throw QemuboxError(.invalidConfiguration, "\(source): unknown key \"\(name)\"")
            }
        }
        return settings
    }
}
