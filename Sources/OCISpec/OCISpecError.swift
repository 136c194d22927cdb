#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The one error type of `OCISpec`: a stable ``Code``, the JSON path of the
/// offending value (e.g. `linux.namespaces[2].type`, empty for the document
/// itself) and a human-readable message.
public struct OCISpecError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Stable error codes; match on these, not on messages.
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The bytes are not JSON.
        case malformedJSON
        /// A known field holds a JSON value of the wrong type or out of range.
        case typeMismatch
        /// A field the specification requires is absent.
        case missingField
        /// A field is present but its value breaks a rule of the specification.
        case invalidValue
        /// A value appears twice where it must be unique.
        case duplicate
        /// Reading or writing a file failed.
        case io
        /// Encoding to JSON failed.
        case encodingFailed
    }

    /// What kind of failure this is.
    public var code: Code
    /// JSON path of the offending value, like `process.user.uid`.
    public var path: String
    /// What is wrong, for humans.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, path: String, _ message: String) {
        self.code = code
        self.path = path
        self.message = message
    }

    /// `path: message` (or the message alone for the document root).
    public var description: String {
        path.isEmpty ? message : "\(path): \(message)"
    }
}

/// A collection of validation failures, all found in one pass.
public struct OCIValidationReport: Sendable, Hashable, CustomStringConvertible {
    /// Every failure, in document order.
    public var errors: [OCISpecError]
    /// Whether no failure was found.
    public var isValid: Bool { errors.isEmpty }
    /// One failure per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Builds JSON paths like `linux.namespaces[2].type`.
enum JSONPath {
    static func render(_ keys: [any CodingKey]) -> String {
        var out = ""
        for key in keys {
            // Array positions carry an int value and a non-numeric string
            // ("Index 2"); dictionary keys like "0" carry both as the same text.
            if let index = key.intValue, key.stringValue != String(index) {
                out += "[\(index)]"
            } else {
                out = join(out, key.stringValue)
            }
        }
        return out
    }

    static func join(_ base: String, _ key: String) -> String {
        base.isEmpty ? key : base + "." + key
    }
}

extension OCISpecError {
    /// Maps a Foundation decoding error to a path-carrying `OCISpecError`.
    init(decoding error: any Error) {
        guard let error = error as? DecodingError else {
            self.init(.malformedJSON, path: "", "\(error)")
            return
        }
        switch error {
        case .typeMismatch(let type, let context):
            self.init(.typeMismatch, path: JSONPath.render(context.codingPath),
                      "expected \(Self.describe(type)): \(context.debugDescription)")
        case .valueNotFound(let type, let context):
            self.init(.typeMismatch, path: JSONPath.render(context.codingPath),
                      "expected \(Self.describe(type)), found null")
        case .keyNotFound(let key, let context):
            self.init(.missingField, path: JSONPath.render(context.codingPath + [key]), "required")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                self.init(.malformedJSON, path: "", "not valid JSON: \(context.debugDescription)")
            } else {
                self.init(.typeMismatch, path: JSONPath.render(context.codingPath), context.debugDescription)
            }
        @unknown default:
            self.init(.malformedJSON, path: "", "\(error)")
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
        case is UInt.Type, is UInt64.Type, is UInt32.Type, is UInt16.Type: return "an unsigned integer"
        case is [Any].Type: return "an array"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array<") { return "an array" }
            if name.hasPrefix("Dictionary<") { return "an object" }
            return "a value of type \(name)"
        }
    }
}
