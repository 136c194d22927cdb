import Foundation
import OCISpec
import Testing
import TestSupport

/// Decodes `data` as `T`, re-encodes it, and checks the two documents are the
/// same JSON tree (numbers exact) with the independent reference reader; also
/// checks a second pass is byte-identical. Returns the decoded value.
@discardableResult
func expectLosslessRoundTrip<T: OCIObject>(_ type: T.Type, _ data: Data,
                                           sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    let value = try T(json: data)
    let encoded = try value.jsonData()
    let original = try RefJSON.parse(data)
    let reencoded = try RefJSON.parse(encoded)
    #expect(RefJSON.differences(original, reencoded) == [], sourceLocation: sourceLocation)
    #expect(original == reencoded, sourceLocation: sourceLocation)
    let again = try T(json: encoded)
    #expect(again == value, sourceLocation: sourceLocation)
    #expect(try again.jsonData() == encoded, "second encoding differs", sourceLocation: sourceLocation)
    // The pretty form is the same tree too.
    #expect(try RefJSON.parse(value.jsonData(pretty: true)) == original, sourceLocation: sourceLocation)
    return value
}

/// Every `(path, key)` held in an `extensions` store anywhere in `value`, with
/// JSON-style paths built from property names (`$.linux.resources.memory`).
func extensionEntries(_ value: Any, path: String = "$") -> Set<String> {
    if value is JSONValue || value is String { return [] }
    let mirror = Mirror(reflecting: value)
    var out: Set<String> = []
    switch mirror.displayStyle {
    case .optional:
        if let child = mirror.children.first { out.formUnion(extensionEntries(child.value, path: path)) }
    case .collection:
        for (i, child) in mirror.children.enumerated() {
            out.formUnion(extensionEntries(child.value, path: "\(path)[\(i)]"))
        }
    case .dictionary:
        for child in mirror.children {
            let pair = Array(Mirror(reflecting: child.value).children)
            if pair.count == 2, let key = pair[0].value as? String {
                out.formUnion(extensionEntries(pair[1].value, path: "\(path).\(key)"))
            }
        }
    case .struct:
        for child in mirror.children {
            guard let label = child.label else { continue }
            if label == "extensions", let store = child.value as? [String: JSONValue] {
                for key in store.keys { out.insert("\(path) \(key)") }
            } else {
                out.formUnion(extensionEntries(child.value, path: "\(path).\(label)"))
            }
        }
    default:
        break
    }
    return out
}

/// Every `(path, key)` of a member named `x…` in a JSON tree, not descending
/// into those members.
func xMembers(_ json: RefJSON, path: String = "$") -> Set<String> {
    switch json {
    case .object(let members):
        var out: Set<String> = []
        for (key, value) in members {
            if key.hasPrefix("x") { out.insert("\(path) \(key)") } else { out.formUnion(xMembers(value, path: "\(path).\(key)")) }
        }
        return out
    case .array(let items):
        return items.enumerated().reduce(into: []) { $0.formUnion(xMembers($1.element, path: "\(path)[\($1.offset)]")) }
    default:
        return []
    }
}

/// Runs `tool arguments…` in `directory` (on a thread of its own) and fails on
/// a non-zero exit.
func runTool(_ tool: String, _ arguments: [String], in directory: String) async throws {
    guard let path = Prerequisite.which(tool) else { throw PeerError("\(tool) is not installed") }
    try await runBlocking {
        let process = Foundation.Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PeerError("\(tool) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
    }
}

/// Properties (as `Type.property`) that are nil in every instance found in
/// `value`: fields a fixture fails to exercise.
func unexercisedFields(_ value: Any) -> Set<String> {
    var all: Set<String> = []
    var seen: Set<String> = []
    func walk(_ value: Any) {
        if value is JSONValue || value is String { return }
        let mirror = Mirror(reflecting: value)
        switch mirror.displayStyle {
        case .optional, .collection:
            mirror.children.forEach { walk($0.value) }
        case .dictionary:
            for child in mirror.children {
                let pair = Array(Mirror(reflecting: child.value).children)
                if pair.count == 2 { walk(pair[1].value) }
            }
        case .struct:
            let typeName = String(describing: type(of: value))
            for child in mirror.children {
                guard let label = child.label, label != "extensions" else { continue }
                let name = "\(typeName).\(label)"
                all.insert(name)
                let inner = Mirror(reflecting: child.value)
                if inner.displayStyle != .optional || !inner.children.isEmpty { seen.insert(name) }
                walk(child.value)
            }
        default:
            break
        }
    }
    walk(value)
    return all.subtracting(seen)
}
