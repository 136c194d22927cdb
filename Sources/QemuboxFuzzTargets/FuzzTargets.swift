/// The fuzz targets: one function per parser of untrusted bytes, each feeding
/// arbitrary input to the real parser through its normal entry point.
///
/// A target returns normally for every input, whether the parser accepted or
/// refused it (a thrown error is the expected answer to garbage). Only a crash, a
/// trap, a hang or unbounded memory is a bug. The functions are synchronous and
/// deterministic, keep no state between calls (the targets that need files get a
/// fresh directory per input) and may run on any thread.
///
/// ```swift
/// for target in FuzzTargets.all {
///     target.run(Array("qemubox ttrpc\n".utf8))
/// }
/// ```
public enum FuzzTargets {
    /// A named fuzz target.
    public typealias Target = (name: String, run: @Sendable ([UInt8]) -> Void)

    /// Every target, by the name used for its fuzzer executable and corpus directory
    /// (`Fuzz/Corpus/<name>/`).
    public static let all: [Target] = [
        ("ttrpc-frame", ttrpcFrameDecoder),
        ("yamux-session", yamuxSession),
        ("qmp-framing", qmpFraming),
        ("guest-stream-header", guestStreamHeader),
        ("tar-reader", tarReader),
        ("erofs-reader", erofsReader),
        ("writeback-stream", writebackStream),
        ("config-toml", configTOML),
    ]

    /// Targets left out of ``all`` because they crash on a known input that cannot be
    /// fixed here (see Documentation/fuzzing.md and `Fuzz/Crashes/`). Their committed
    /// corpus still runs in the smoke test; `scripts/fuzz.sh NAME` still fuzzes them.
    /// None at present (`config-toml` was here while `config.toml` was parsed by toml++,
    /// which aborted on malformed text; qemubox's own parser replaced it).
    public static let disabled: [Target] = []

    /// Looks a target up by name, in ``all`` and ``disabled``.
    public static func target(named name: String) -> Target? {
        (all + disabled).first { $0.name == name }
    }

    /// Runs the target `name` on `bytes` (a libFuzzer input); an unknown name traps.
    public static func run(_ name: String, _ bytes: UnsafeBufferPointer<UInt8>) {
        guard let target = target(named: name) else { fatalError("no fuzz target named \(name)") }
        target.run(Array(bytes))
    }
}

/// Splits fuzz input into chunks, so that parsers fed from a byte stream also see
/// their input arrive in pieces. The first byte picks the chunk size (1…64, or
/// everything at once for 0), raised so that there are at most 64 chunks (each
/// chunk costs a trip through the channel pipeline); the rest is the payload.
struct FuzzChunks {
    static let maxChunks = 64

    let chunkSize: Int
    let payload: ArraySlice<UInt8>

    init(_ data: [UInt8]) {
        guard let first = data.first else {
            chunkSize = 1
            payload = []
            return
        }
        payload = data.dropFirst()
        let size = Int(first % 65)
        let smallest = (payload.count + Self.maxChunks - 1) / Self.maxChunks
        chunkSize = max(1, size == 0 ? payload.count : max(size, smallest))
    }

    /// The payload's chunks, in order.
    var chunks: [ArraySlice<UInt8>] {
        stride(from: payload.startIndex, to: payload.endIndex, by: chunkSize).map {
            payload[$0..<min($0 + chunkSize, payload.endIndex)]
        }
    }
}
