#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Collects validation failures with their JSON paths.
struct OCIValidator {
    private(set) var errors: [OCISpecError] = []

    mutating func fail(_ code: OCISpecError.Code, _ path: String, _ message: String) {
        errors.append(OCISpecError(code, path: path, message))
    }

    mutating func require<T>(_ value: T?, _ path: String) {
        if value == nil { fail(.missingField, path, "required") }
    }

    mutating func absolute(_ value: String?, _ path: String) {
        guard let value else { return }
        if !value.hasPrefix("/") { fail(.invalidValue, path, "must be absolute, got \"\(value)\"") }
    }

    mutating func oneOf(_ value: String?, _ allowed: Set<String>, _ path: String, what: String) {
        guard let value, !allowed.contains(value) else { return }
        fail(.invalidValue, path, "unknown \(what) \"\(value)\"")
    }

    mutating func range<T: Comparable>(_ value: T?, _ bounds: ClosedRange<T>, _ path: String) {
        guard let value, !bounds.contains(value) else { return }
        fail(.invalidValue, path, "must be in \(bounds.lowerBound)...\(bounds.upperBound), got \(value)")
    }

    /// Reports the first error, if any.
    func throwFirst() throws(OCISpecError) {
        if let first = errors.first { throw first }
    }

    var report: OCIValidationReport { OCIValidationReport(errors: errors) }
}

/// Small pattern checks (no regex engine needed).
enum OCIPatterns {
    static let digits = Set("0123456789")
    static let lowerHex = Set("0123456789abcdef")
    static let upper = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    static let lower = Set("abcdefghijklmnopqrstuvwxyz")

    /// SemVer 2.0: `MAJOR.MINOR.PATCH[-pre][+build]`, no leading zeros.
    static func isSemVer(_ value: String) -> Bool {
        var core = Substring(value)
        if let plus = core.firstIndex(of: "+") {
            let build = core[core.index(after: plus)...]
            guard isDotIdentifiers(build) else { return false }
            core = core[..<plus]
        }
        if let dash = core.firstIndex(of: "-") {
            let pre = core[core.index(after: dash)...]
            guard isDotIdentifiers(pre) else { return false }
            core = core[..<dash]
        }
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.allSatisfy(digits.contains) && (part == "0" || part.first != "0")
        }
    }

    private static func isDotIdentifiers(_ value: Substring) -> Bool {
        let ids = value.split(separator: ".", omittingEmptySubsequences: false)
        return !ids.isEmpty && ids.allSatisfy { id in
            !id.isEmpty && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    /// A prefix followed by `[A-Z0-9_]+`.
    static func isConstant(_ value: String, prefix: String) -> Bool {
        guard value.hasPrefix(prefix), value.count > prefix.count else { return false }
        return value.dropFirst(prefix.count).allSatisfy { upper.contains($0) || digits.contains($0) || $0 == "_" }
    }
}
