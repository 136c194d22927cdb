import Foundation
import QemuboxKit
import Testing

/// The parser against a real peer: Python 3.11's `tomllib` (python3 is on the development
/// machine and on Debian 12 CI). Each document is parsed by both; a valid one must give
/// the same value, converted on both sides to one canonical JSON form (toml-test's tagged
/// values: `{"type": "integer", "value": "42"}`; floats by their bit pattern, NaN as `nan`;
/// date-times in RFC 3339 with microseconds, as far as Python's `datetime` goes), and an
/// invalid one must be refused by both.
///
/// Left out on purpose, where the two differ by design: integers beyond 64 bits (Python's
/// are unbounded; TOML lets an implementation refuse them), the year 0000 (beyond Python's
/// `datetime`), a byte order mark (skipped here), nesting beyond 128 levels (refused here).
@Suite struct TOMLDifferentialTests {
    /// A document and whether it is valid TOML 1.0.0.
    struct Document: Sendable, CustomTestStringConvertible {
        var bytes: [UInt8]
        var valid: Bool
        var testDescription: String { String(decoding: bytes, as: UTF8.self).debugDescription }
    }

    static func valid(_ text: String) -> Document { Document(bytes: Array(text.utf8), valid: true) }
    static func invalid(_ text: String) -> Document { Document(bytes: Array(text.utf8), valid: false) }

    static let documents: [Document] = [
        // Comments, whitespace, keys.
        valid("# c\n\n\ta = 1 # trailing\r\nb=2\n  # indented\n"),
        valid(""),
        valid("bare_key-1 = 1\n1234 = 2\n-_- = 3\n\"quoted key\" = 4\n'lit \"key\"' = 5\n\"\" = 6"),
        valid("a . \"b.c\" . 'd' = 1\na.e = 2\n3.14159 = \"pi\""),
        valid("\"\\u00e9\" = 1\n\"e\\u0301\" = 2\n'ü' = 3\n'x\\y' = 4"),
        valid("true = 1\nfalse = 2\ninf = 3\nnan = 4\n\"[x]\" = 5"),
        // Strings.
        valid(#"s = "tab\t quote\" bs\\ \b\f\n\r \u00E9 \U0001F600 \u0000 \u007F""#),
        valid("s = \"a\tb\"\nl = 'a\tb'\n# tab\tin a comment\u{7E} é"),
        valid("l = 'C:\\Users\\no\\escapes'\ne = ''\nq = '\"'"),
        valid("s = \"\"\"\nRoses\nViolets\"\"\"\nt = \"\"\"\n\n two\"\"\""),
        valid("s = \"\"\"\\\n   The quick \\\n\n  brown \\   \n  fox.\\\n  \"\"\""),
        valid("s = \"\"\"\"one\" \"\"two\"\" \"\"\"\"\nt = \"\"\"x\"\"\"\"\"\nu = \"\"\"\"\"\"\"\""),
        valid("s = '''\nraw \\n ''q'' '''\nt = ''''''''\nu = '''x'''''"),
        valid("s = \"\"\"a\r\nb\\\r\n  c\"\"\"\r\nt = '''\r\nx\r\n'''"),
        // Integers.
        valid("a = [+99, 42, 0, -17, +0, -0, 1_000, 5_349_221, 1_2_3]"),
        valid("a = [0xDEADBEEF, 0xdead_beef, 0x0, 0o01234567, 0o755, 0b11010110, 0b0_1]"),
        valid("max = 9223372036854775807\nmin = -9223372036854775808\nhex = 0x7FFFFFFFFFFFFFFF\noct = 0o777777777777777777777\nbin = 0b111"),
        // Floats.
        valid("a = [+1.0, 3.1415, -0.01, 5e+22, 1e06, -2E-2, 6.626e-34, 224_617.445_991_228, 1e1_0, 0e0, 0.0, -0.0, +0.0]"),
        valid("a = [inf, +inf, -inf, nan, +nan, -nan]\nb = 1e400\nc = 4.9e-324\nd = 1.7976931348623157e308\ne = 0.1"),
        valid("a = 123456789012345678901234567890.5\nb = 1.000000000000000000001"),
        // Booleans and date-times.
        valid("t = true\nf = false\na = [true, false]"),
        valid("a = 1979-05-27T07:32:00Z\nb = 1979-05-27T00:32:00-07:00\nc = 1979-05-27T00:32:00.999999+05:30\nd = 1979-05-27 07:32:00z"),
        valid("a = 1979-05-27t07:32:00\nb = 1979-05-27T00:32:00.1234567891\nc = 1979-05-27T00:32:00.5\nd = 2000-02-29\ne = 2024-02-29"),
        valid("a = 07:32:00\nb = 00:32:00.000001\nc = 23:59:59.9999999\nd = 1979-05-27 # date\ne = 1979-05-27T07:32:00-00:00\nf = 9999-12-31T23:59:59+23:59"),
        // Arrays.
        valid("e = []\nm = [1, \"two\", 3.0, [4], {five = 5}, 1979-05-27, true]\nn = [[1, 2], [[3]], []]"),
        valid("a = [\n  1, # one\n  # a line\n\n  2,\n]\nb = [1,]\nc = [ \"x\" , 'y' ]\nd = [\n]"),
        // Inline tables.
        valid("n = { first = \"Tom\", last = \"Preston-Werner\" }\ne = {}\nd = { type.name = \"pug\", type.age = 3 }"),
        valid("n = { a = { b = [1, { c = {} }] } }\np = [ { x = 1, y = 2 }, { x = 7 } ]\nl = { a = [\n1,\n] }"),
        valid("t = {\"a b\" = 1, 'c' = 2, d . e = 3}"),
        // Tables and arrays of tables.
        valid("top = 0\n[a.b.c]\nx = 1\n[a]\ny = 2\n[ a . b . \"d e\" ]\n[x.y.z.w]\n[x]"),
        valid("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true"),
        valid("[[f]]\nname = \"apple\"\n[f.physical]\ncolor = \"red\"\n[[f.v]]\nn = 1\n[[f.v]]\nn = 2\n[[f]]\nname = \"banana\"\n[[f.v]]\nn = 3"),
        valid("[a.b.c]\n[a]\nb.d = 1"),
        valid("[[a]]\nb.c = 1\n[[a]]\nb.c = 2\n[a.b.x]\n[[a.d]]"),
        valid("[a]\n[[a.b]]\n[[a.b]]\nx = 1\n[a.c]"),
        valid("a.b.c = 1\na.b.d = 2\n[a.b.e]\n[a.x]"),
        valid("[\"quoted.header\"]\n['lit']\n[\"\"]\n[\"\".x]"),
        valid("[t]\narr = [{a = 1}]\n[[u]]\n[u.v]\n[[u]]\n[u.v]"),
        valid(Self.config),
        // Invalid: statements and keys.
        invalid("a = 1\na : 2"), invalid("= 1"), invalid("a b = 1"), invalid("a = "), invalid("a =\n1"),
        invalid("a = 1 b = 2"), invalid("a. = 1"), invalid(".a = 1"), invalid("\"\"\"k\"\"\" = 1"), invalid("a = 1\rb = 2"),
        invalid("# bad \u{7F}"), invalid("# bad \u{1}"), invalid("a = 1 # \r x"),
        // Headers.
        invalid("[a"), invalid("[]"), invalid("[[a]"), invalid("[a]]"), invalid("[ [a] ]"), invalid("[a] b = 1"),
        invalid("[a.]"), invalid("[[]]"),
        // Redefinitions.
        invalid("a = 1\na = 2"), invalid("[a]\nb = 1\n[a]"), invalid("a.b = 1\n[a]"), invalid("[a]\nb.c = 1\n[a.b]"),
        invalid("[a.b.c]\nz = 9\n[a]\nb.c.t = 1"), invalid("[a]\nb.c = 1\n[x]\n[a]"), invalid("a = {}\n[a.b]"),
        invalid("a = {b = 1}\na.c = 2"), invalid("a = [1]\n[[a]]"), invalid("a = [{}]\n[a.b]"), invalid("[[a]]\n[a]"),
        invalid("[a]\n[[a]]"), invalid("a = 1\n[a.b]"), invalid("a = 1\na.b = 2"), invalid("a = {b = 1, b = 2}"),
        invalid("a = {b.c = 1, b = 2}"), invalid("a = {b = {c = 1}, b.d = 2}"), invalid("a.b = 1\na.b.c = 2"),
        invalid("[a]\nb = 1\n[a.b]"), invalid("a = [{b = 1}]\n[[a.c]]"), invalid("[[a.b]]\n[a]\nb.c = 1"),
        invalid("[fruit]\napple.color = \"red\"\n[fruit.apple]"),
        // Inline tables and arrays.
        invalid("a = {x = 1,}"), invalid("a = {x = 1\n}"), invalid("a = {\nx = 1}"), invalid("a = {x = 1 # c\n}"),
        invalid("a = [1 2]"), invalid("a = [1,,2]"), invalid("a = [,]"), invalid("a = [1"), invalid("a = {,}"),
        // Strings.
        invalid("a = \"abc"), invalid("a = \"abc\nd\""), invalid("a = \"\\x41\""), invalid("a = \"\\e\""), invalid("a = \"\\ \""),
        invalid("a = \"\\u12\""), invalid("a = \"\\uD800\""), invalid("a = \"\\U00110000\""), invalid("a = \"x\u{1}\""),
        invalid("a = 'x\u{0}'"), invalid("a = 'line\nbreak'"), invalid("a = \"\"\"x\"\"\"\"\"\""), invalid("a = '''x''''''"),
        invalid("a = \"\"\"x\\ y\"\"\""), invalid("a = \"\"\"\nx\u{8}\"\"\""), invalid("a = '''\nx\ry'''"), invalid("a = '''x"),
        invalid("a = \"\u{7F}\""),
        // Numbers.
        invalid("a = 01"), invalid("a = 1__0"), invalid("a = 1_"), invalid("a = _1"), invalid("a = 0x_1"), invalid("a = +0x1"),
        invalid("a = -0o1"), invalid("a = 0o8"), invalid("a = 0b"), invalid("a = 0b2"), invalid("a = 0X1"), invalid("a = 1-2"),
        invalid("a = 1."), invalid("a = .5"), invalid("a = 1.e5"), invalid("a = 1e"), invalid("a = 1e_5"), invalid("a = 00.5"),
        invalid("a = 1.5.3"), invalid("a = infinity"), invalid("a = NaN"), invalid("a = Inf"), invalid("a = +-1"),
        invalid("a = tru"), invalid("a = truee"), invalid("a = TRUE"), invalid("a = 1_000_"), invalid("a = 0_1"),
        // Dates and times.
        invalid("a = 1979-02-29"), invalid("a = 1900-02-29"), invalid("a = 1979-04-31"), invalid("a = 1979-13-01"),
        invalid("a = 1979-00-01"), invalid("a = 1979-05-00"), invalid("a = 1979-5-27"), invalid("a = 1979-05-27T24:00:00"),
        invalid("a = 1979-05-27T07:60:00"), invalid("a = 1979-05-27T07:32:60"), invalid("a = 1979-05-27T07:32"),
        invalid("a = 1979-05-27T"), invalid("a = 1979-05-27 07:3"), invalid("a = 1979-05-27T07:32:00."),
        invalid("a = 1979-05-27T07:32:00+24:00"), invalid("a = 1979-05-27T07:32:00+0700"), invalid("a = 1979-05-27T07:32:00Zx"),
        invalid("a = 07:32"), invalid("a = 07:32:00Z"), invalid("a = 7:32:00"), invalid("a = 1979-05-27T7:32:00"),
        invalid("a = 1979-05-27_07:32:00"), invalid("a = 1979-05-27T07:32:00+07"),
        // Encoding: invalid UTF-8 (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF, truncated).
        Document(bytes: [0x61, 0x20, 0x3D, 0x20, 0x22, 0xFF, 0x22], valid: false),
        Document(bytes: [0x23, 0x20, 0xC0, 0xAF], valid: false),
        Document(bytes: [0x61, 0x3D, 0x22, 0xED, 0xA0, 0x80, 0x22], valid: false),
        Document(bytes: [0x61, 0x3D, 0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], valid: false),
        Document(bytes: [0x61, 0x3D, 0x22, 0xC3], valid: false),
        // The inputs on which toml++ aborted.
        Document(bytes: Array("vcpus = 0\nunknown = 1\n[ = 0\nunknown = 1\n[networ]]\nnic_slots =networ]]\nnic_slots = \"x\"\n".utf8),
                 valid: false),
        Document(bytes: Array("dt = 1979-05-27T".utf8) + [0x9D] + Array("7:32:00Z\n".utf8), valid: false),
    ]

    /// A full config.toml.
    static let config = """
        qemu = "/usr/bin/qemu-system-x86_64"
        kernel = ""
        accelerator = "tcg"   # auto | kvm | tcg
        vcpus = 2
        memory_mib = 512
        state_dir = "/run/qemubox"
        guest_debug = true

        [network]
        networks = ["bridge", "macvlan"]
        bin_dirs = [
          "/opt/cni/bin",
          "/usr/lib/cni",
        ]
        nic_slots = 2

        [jail]
        enabled = true
        first_id = 1_500_000_000
        seccomp = "log"
        """

    /// Reads the documents (a JSON array of base64 strings, file named by argv[1]) and prints
    /// per document `OK <canonical JSON>` or `ERR <message>`.
    static let python = #"""
        import base64, datetime, json, math, struct, sys
        try:
            import tomllib
        except ImportError as e:
            sys.exit(f"python3 lacks tomllib (Python 3.11 or later is required): {e}")

        def clock(v):
            s = f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
            return s + (f".{v.microsecond:06d}" if v.microsecond else "")

        def tag(v):
            if isinstance(v, dict): return {k: tag(x) for k, x in v.items()}
            if isinstance(v, list): return [tag(x) for x in v]
            if isinstance(v, bool): return {"type": "bool", "value": "true" if v else "false"}
            if isinstance(v, int): return {"type": "integer", "value": str(v)}
            if isinstance(v, float):
                s = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else struct.pack(">d", v).hex()
                return {"type": "float", "value": s}
            if isinstance(v, str): return {"type": "string", "value": v}
            if isinstance(v, datetime.datetime):
                s = f"{v.year:04d}-{v.month:02d}-{v.day:02d}T" + clock(v)
                if v.tzinfo is None: return {"type": "datetime-local", "value": s}
                offset = int(v.utcoffset().total_seconds() // 60)
                sign = "+" if offset >= 0 else "-"
                return {"type": "datetime", "value": s + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"}
            if isinstance(v, datetime.date): return {"type": "date-local", "value": f"{v.year:04d}-{v.month:02d}-{v.day:02d}"}
            if isinstance(v, datetime.time): return {"type": "time-local", "value": clock(v)}
            raise TypeError(f"unexpected {type(v)}")

        with open(sys.argv[1]) as f:
            documents = [base64.b64decode(d) for d in json.load(f)]
        for document in documents:
            try:
                value = tomllib.loads(document.decode("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                print("ERR " + str(e).replace("\n", " "))
                continue
            print("OK " + json.dumps(tag(value), sort_keys=True, separators=(",", ":")))
        """#

    struct PythonFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs the script on `documents`: one line per document.
    static func tomllib(_ documents: [[UInt8]]) throws -> [String] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("qemubox-toml-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("documents.json")
        try JSONSerialization.data(withJSONObject: documents.map { Data($0).base64EncodedString() }).write(to: input)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", python, input.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PythonFailure(description: "python3 (3.11 or later, with tomllib) is required for this test; "
                + "it exited with status \(process.terminationStatus): \(output)")
        }
        return output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test func agreesWithPythonTomllib() throws {
        let documents = Self.documents
        let answers = try Self.tomllib(documents.map(\.bytes))
        try #require(answers.count == documents.count, "tomllib answered \(answers.count) times for \(documents.count) documents")
        var agreed = (valid: 0, invalid: 0)
        for (document, answer) in zip(documents, answers) {
            let ours: String
            do {
                ours = "OK " + Self.canonical(.table(try TOMLParser.parse(document.bytes)))
            } catch {
                ours = "ERR \(error)"
            }
            #expect(ours.hasPrefix("OK") == document.valid, "\(document.testDescription): we said \(ours)")
            #expect(answer.hasPrefix("OK") == document.valid, "\(document.testDescription): tomllib said \(answer)")
            if ours.hasPrefix("OK") && answer.hasPrefix("OK") {
                #expect(ours == answer, "\(document.testDescription)")
                if ours == answer { agreed.valid += 1 }
            } else if !ours.hasPrefix("OK") && !answer.hasPrefix("OK") {
                agreed.invalid += 1
            }
        }
        #expect(agreed.valid == documents.filter(\.valid).count)
        #expect(agreed.invalid == documents.filter { !$0.valid }.count)
    }

    // MARK: - The canonical form

    /// toml-test's tagged JSON, keys sorted by code point, as Python's `json.dumps(sort_keys=True,
    /// separators=(",", ":"))` prints it (non-ASCII escaped, lowercase hex, surrogate pairs).
    static func canonical(_ value: TOMLValue) -> String {
        switch value {
        case .string(let text): tagged("string", text)
        case .integer(let integer): tagged("integer", String(integer))
        case .float(let float):
            tagged("float", float.isNaN ? "nan" : float.isInfinite ? (float > 0 ? "inf" : "-inf")
                : pad(String(float.bitPattern, radix: 16), 16))
        case .boolean(let bool): tagged("bool", bool ? "true" : "false")
        case .offsetDateTime(let date, let time, let offset):
            tagged("datetime", "\(date)T\(clock(time))\(offset < 0 ? "-" : "+")"
                + "\(pad(String(abs(offset) / 60), 2)):\(pad(String(abs(offset) % 60), 2))")
        case .localDateTime(let date, let time): tagged("datetime-local", "\(date)T\(clock(time))")
        case .localDate(let date): tagged("date-local", "\(date)")
        case .localTime(let time): tagged("time-local", clock(time))
        case .array(let elements): "[" + elements.map(canonical).joined(separator: ",") + "]"
        case .table(let table):
            "{" + table.entries
                .sorted { $0.key.unicodeScalars.map(\.value).lexicographicallyPrecedes($1.key.unicodeScalars.map(\.value)) }
                .map { json($0.key) + ":" + canonical($0.value) }.joined(separator: ",") + "}"
        }
    }

    static func tagged(_ type: String, _ value: String) -> String { "{\"type\":\"\(type)\",\"value\":\(json(value))}" }

    static func pad(_ digits: String, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// Python's time format with microseconds (its `datetime` truncates beyond them).
    static func clock(_ time: TOMLTime) -> String {
        let micro = time.nanosecond / 1000
        return "\(pad(String(time.hour), 2)):\(pad(String(time.minute), 2)):\(pad(String(time.second), 2))"
            + (micro == 0 ? "" : "." + pad(String(micro), 6))
    }

    /// A JSON string as Python's `json.dumps(ensure_ascii=True)` writes it.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{8}": out += "\\b"
            case "\u{C}": out += "\\f"
            case " "..."~": out.unicodeScalars.append(scalar)
            default:
                func unit(_ value: UInt32) -> String { "\\u" + pad(String(value, radix: 16), 4) }
                if scalar.value > 0xFFFF {
                    let value = scalar.value - 0x10000
                    out += unit(0xD800 + (value >> 10)) + unit(0xDC00 + (value & 0x3FF))
                } else {
                    out += unit(scalar.value)
                }
            }
        }
        return out + "\""
    }
}
