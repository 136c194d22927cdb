/// The tables of a document (or of one inline table) while it is parsed, with what TOML's
/// redefinition rules need to know about each: whether a `[header]` or dotted keys
/// defined it, and which ones the current section's dotted keys went through.
///
/// The rules (TOML 1.0.0, as Python's `tomllib` reads them):
/// - a key is defined once; a `[table]` header names a table once;
/// - a header may name a table that only exists as the parent of another header
///   (`[a.b]` then `[a]`), never one defined by a header or by dotted keys;
/// - dotted keys may add to tables they created, or that headers only implied, within one
///   section; after the section those tables count as defined;
/// - inline tables and arrays written as values are complete: nothing adds to them;
/// - `[[a]]` appends a table to the array of tables `a` (and only to one made that way).
struct TOMLTableBuilder {
    /// A key's value while parsing.
    enum Entry {
        /// A value written in full: scalars, arrays, inline tables.
        case value(TOMLValue)
        /// A table made by headers or dotted keys (an index in ``nodes``).
        case table(Int)
        /// An array of tables (an index in ``arrays``).
        case tables(Int)
    }

    /// How a table came to exist.
    enum Origin {
        /// Only as the parent of a header (`a` in `[a.b]`): a header may still define it.
        case implied
        /// By a `[header]` (or as an element of an array of tables).
        case header
        /// By dotted keys in an earlier section.
        case dottedKeys
    }

    /// One table.
    struct Node {
        /// The keys in the order of the text.
        var keys: [String] = []
        /// Each key's value.
        var entries: [TOMLKey: Entry] = [:]
        /// What made the table.
        var origin: Origin
        /// Went through by dotted keys in the current section (becomes ``Origin/dottedKeys``).
        var pending = false
        /// How many tables enclose it.
        let depth: Int
    }

    /// A rule broken at a byte offset; the parser adds the line and column.
    struct Conflict: Error {
        /// What is wrong.
        var message: String
        /// Where in the document.
        var offset: Int
    }

    /// A key's part with its offset.
    typealias KeyPart = TOMLParser.KeyPart

    /// The index of the root table.
    static let root = 0

    /// Every table; the root is at ``root``.
    private var nodes: [Node]
    /// Every array of tables: its tables' indices in ``nodes``.
    private var arrays: [[Int]] = []
    /// The tables the current section's dotted keys went through.
    private var pending: [Int] = []

    /// A builder whose root table is at `depth` (non-zero for an inline table).
    init(rootDepth: Int = 0) {
        nodes = [Node(origin: .header, depth: rootDepth)]
    }

    /// How deep `table` is nested.
    func depth(of table: Int) -> Int { nodes[table].depth }

    /// A header starts a new section: tables the last one's dotted keys went through are now defined.
    mutating func endSection() {
        for index in pending {
            nodes[index].pending = false
            if nodes[index].origin == .implied { nodes[index].origin = .dottedKeys }
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// `key = value` in `table` (a section's table, or an inline table's root).
    mutating func insert(_ value: TOMLValue, at key: [KeyPart], in table: Int) throws(Conflict) {
        guard let last = key.last else { return }
        var current = table
        for (index, part) in key.dropLast().enumerated() {
            let name = TOMLKey(part.name)
            switch nodes[current].entries[name] {
            case nil:
                current = try makeTable(part, in: current, origin: .implied)
            case .table(let child):
                guard nodes[child].origin == .implied else {
                    let how = nodes[child].origin == .header ? "by a [table] header" : "by dotted keys in another section"
                    throw Conflict(message: "cannot add to table \(path(key, through: index)) with dotted keys: it is defined \(how)",
                                   offset: part.offset)
                }
                current = child
            case .tables:
                throw Conflict(message: "cannot add to \(path(key, through: index)) with dotted keys: it is an array of tables",
                               offset: part.offset)
            case .value(let existing):
                throw Conflict(message: Self.notExtensible(existing, path(key, through: index)), offset: part.offset)
            }
            if !nodes[current].pending {
                nodes[current].pending = true
                pending.append(current)
            }
        }
        guard nodes[current].entries[TOMLKey(last.name)] == nil else {
            throw Conflict(message: "key \(path(key, through: key.count - 1)) is defined twice", offset: last.offset)
        }
        nodes[current].keys.append(last.name)
        nodes[current].entries[TOMLKey(last.name)] = .value(value)
    }

    /// `[key]`: returns the table.
    mutating func defineTable(at key: [KeyPart]) throws(Conflict) -> Int {
        guard let last = key.last else { return Self.root }
        let parent = try walkHeader(key)
        switch nodes[parent].entries[TOMLKey(last.name)] {
        case nil:
            return try makeTable(last, in: parent, origin: .header)
        case .table(let table):
            switch nodes[table].origin {
            case .implied:
                nodes[table].origin = .header
                return table
            case .header:
                throw Conflict(message: "table [\(TOMLParser.display(key))] is defined twice", offset: key[0].offset)
            case .dottedKeys:
                throw Conflict(message: "table [\(TOMLParser.display(key))] is already defined by dotted keys",
                               offset: key[0].offset)
            }
        case .tables:
            throw Conflict(message: "\(TOMLParser.display(key)) is an array of tables, [\(TOMLParser.display(key))] cannot define it",
                           offset: key[0].offset)
        case .value(let existing):
            throw Conflict(message: Self.notExtensible(existing, TOMLParser.display(key)), offset: key[0].offset)
        }
    }

    /// `[[key]]`: appends a table to the array of tables and returns it.
    mutating func appendTable(at key: [KeyPart]) throws(Conflict) -> Int {
        guard let last = key.last else { return Self.root }
        let parent = try walkHeader(key)
        let name = TOMLKey(last.name)
        switch nodes[parent].entries[name] {
        case nil:
            let table = try makeNode(last, in: parent, origin: .header)
            arrays.append([table])
            nodes[parent].keys.append(last.name)
            nodes[parent].entries[name] = .tables(arrays.count - 1)
            return table
        case .tables(let array):
            let table = try makeNode(last, in: parent, origin: .header)
            arrays[array].append(table)
            return table
        case .table:
            throw Conflict(message: "\(TOMLParser.display(key)) is a table, [[\(TOMLParser.display(key))]] cannot make it an array of tables",
                           offset: key[0].offset)
        case .value(let existing):
            let message = if case .array = existing {
                "cannot append to \(TOMLParser.display(key)) with [[\(TOMLParser.display(key))]]: it is a static array"
            } else {
                Self.notExtensible(existing, TOMLParser.display(key))
            }
            throw Conflict(message: message, offset: key[0].offset)
        }
    }

    /// The table a header's key names the parent of, made where missing; through an array
    /// of tables it goes to the last element.
    private mutating func walkHeader(_ key: [KeyPart]) throws(Conflict) -> Int {
        var current = Self.root
        for (index, part) in key.dropLast().enumerated() {
            switch nodes[current].entries[TOMLKey(part.name)] {
            case nil:
                current = try makeTable(part, in: current, origin: .implied)
            case .table(let child):
                current = child
            case .tables(let array):
                guard let element = arrays[array].last else { return current }
                current = element
            case .value(let existing):
                throw Conflict(message: Self.notExtensible(existing, path(key, through: index)), offset: part.offset)
            }
        }
        return current
    }

    /// A new table under `key` in `parent`.
    private mutating func makeTable(_ key: KeyPart, in parent: Int, origin: Origin) throws(Conflict) -> Int {
        let table = try makeNode(key, in: parent, origin: origin)
        nodes[parent].keys.append(key.name)
        nodes[parent].entries[TOMLKey(key.name)] = .table(table)
        return table
    }

    /// A new table one level below `parent`, not yet linked to it.
    private mutating func makeNode(_ key: KeyPart, in parent: Int, origin: Origin) throws(Conflict) -> Int {
        let depth = nodes[parent].depth + 1
        guard depth <= TOMLParser.maxDepth else {
            throw Conflict(message: "tables nested more than \(TOMLParser.maxDepth) deep", offset: key.offset)
        }
        nodes.append(Node(origin: origin, depth: depth))
        return nodes.count - 1
    }

    /// The first `index + 1` parts of `key`, for messages.
    private func path(_ key: [KeyPart], through index: Int) -> String {
        TOMLParser.display(key.prefix(index + 1))
    }

    /// Why a key that holds `value` cannot be used as a table.
    private static func notExtensible(_ value: TOMLValue, _ path: String) -> String {
        switch value {
        case .table: "cannot add to inline table \(path): an inline table is complete as written"
        case .array: "cannot add to array \(path): an array written as a value is complete"
        default: "key \(path) is \(value.typeNameWithArticle), not a table"
        }
    }

    /// The finished table `index`, with everything below it.
    func table(_ index: Int) -> TOMLTable {
        let node = nodes[index]
        var storage: [TOMLKey: TOMLValue] = [:]
        storage.reserveCapacity(node.keys.count)
        for (key, entry) in node.entries {
            switch entry {
            case .value(let value): storage[key] = value
            case .table(let table): storage[key] = .table(self.table(table))
            case .tables(let array): storage[key] = .array(arrays[array].map { .table(self.table($0)) })
            }
        }
        return TOMLTable(keys: node.keys, storage: storage)
    }
}

extension TOMLParser {
    /// A builder's ``TOMLTableBuilder/Conflict`` as a ``TOMLError`` with its line and column.
    func error(_ conflict: TOMLTableBuilder.Conflict) -> TOMLError {
        error(conflict.message, at: conflict.offset)
    }
}
