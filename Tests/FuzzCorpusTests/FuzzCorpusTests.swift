import Foundation
import QemuboxFuzzTargets
import Testing

/// The smoke run of the fuzz targets (Documentation/fuzzing.md): every committed
/// corpus input of every target, then a few hundred mutations of them from a fixed
/// seed, in process and without sanitizers. A crash here is a crash the fuzzer
/// would report; the long runs are `scripts/fuzz.sh`.
struct FuzzCorpusTests {
    /// `Fuzz/Corpus` in this checkout.
    static let corpusRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Corpus")

    static let mutationsPerTarget = 300

    static func corpus(_ name: String) throws -> [[UInt8]] {
        let dir = corpusRoot.appendingPathComponent(name)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        return try files.map { try Array(Data(contentsOf: dir.appendingPathComponent($0))) }
    }

    @Test("every target has a committed corpus, and no other directory is there")
    func corpusDirectories() throws {
        let directories = try FileManager.default.contentsOfDirectory(atPath: Self.corpusRoot.path).sorted()
        #expect(directories == (FuzzTargets.all + FuzzTargets.disabled).map(\.name).sorted())
    }

    @Test("the committed corpus of a disabled target runs without crashing",
          arguments: FuzzTargets.disabled.map(\.name))
    func disabledCorpus(_ name: String) throws {
        let target = try #require(FuzzTargets.target(named: name))
        let inputs = try Self.corpus(name)
        #expect(!inputs.isEmpty, "Fuzz/Corpus/\(name) is empty")
        for input in inputs { target.run(input) }
    }

    @Test("corpus and mutations run without crashing", arguments: FuzzTargets.all.map(\.name))
    func smoke(_ name: String) throws {
        let target = try #require(FuzzTargets.target(named: name))
        let inputs = try Self.corpus(name)
        #expect(!inputs.isEmpty, "Fuzz/Corpus/\(name) is empty")
        for input in inputs { target.run(input) }
        target.run([])
        var random = SplitMix64(seed: 0x71656D75_626F78 ^ UInt64(name.utf8.count))
        for _ in 0..<Self.mutationsPerTarget {
            guard let base = inputs.randomElement(using: &random) else { break }
            target.run(Mutator.mutate(base, using: &random))
        }
    }
}

/// A small deterministic generator (SplitMix64), so every run tries the same inputs.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// libFuzzer-style byte mutations: flips, random and interesting bytes, inserts,
/// deletions, duplicated ranges, truncation.
enum Mutator {
    static let interesting: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 0x0A, 0x20, 0x2F, 0x2E, 0x30, 0x22, 0x7B]

    static func mutate(_ input: [UInt8], using random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<7, using: &random) {
            case 0 where !bytes.isEmpty:
                bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            case 1 where !bytes.isEmpty:
                bytes[position] = UInt8.random(in: 0...255, using: &random)
            case 2 where !bytes.isEmpty:
                bytes[position] = interesting.randomElement(using: &random) ?? 0
            case 3:
                bytes.insert(UInt8.random(in: 0...255, using: &random), at: position)
            case 4 where !bytes.isEmpty:
                bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...16, using: &random)))
            case 5 where !bytes.isEmpty:
                let end = min(bytes.count, position + Int.random(in: 1...64, using: &random))
                bytes.insert(contentsOf: bytes[position..<end], at: Int.random(in: 0...bytes.count, using: &random))
            default:
                bytes = Array(bytes.prefix(position))
            }
        }
        return bytes
    }
}
