// erofs-convert: turns a directory or OCI layer tarball(s) into an EROFS image.
//
//   erofs-convert [-z none|lz4|lz4hc[,LEVEL]] [-T SECONDS] [--merge] OUTPUT SOURCE...
//
// SOURCE is a directory, or one or more layer tars (.tar or .tar.gz). With several
// tars (or --merge) the layers are merged with their whiteouts applied; a single tar
// keeps whiteouts in overlay form. A progress bar is drawn when stderr is a terminal.
import EROFSImage
import Foundation

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: erofs-convert [-z none|lz4|lz4hc[,LEVEL]] [-T SECONDS] [--merge] OUTPUT SOURCE...\n".utf8))
    exit(2)
}

var options = EROFSWriterOptions()
var merge = false
var positional: [String] = []
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    switch arg {
    case "-z":
        guard let value = args.popFirst() else { usage() }
        let parts = value.split(separator: ",")
        switch parts.first {
        case "none": options.compression = .none
        case "lz4": options.compression = .lz4
        case "lz4hc": options.compression = .lz4hc(level: parts.count > 1 ? Int(parts[1]) ?? 9 : 9)
        default: usage()
        }
    case "-T":
        guard let value = args.popFirst(), let t = Int64(value) else { usage() }
        options.fixedTimestamp = t
    case "--merge": merge = true
    case "-h", "--help": usage()
    default: positional.append(arg)
    }
}
guard positional.count >= 2 else { usage() }
let output = positional[0]
let sources = Array(positional.dropFirst())

let bar = ProgressBar(enabled: isatty(2) == 1)
do {
    let writer = try EROFSImageWriter(path: output, options: options)
    writer.progress = { bar.update($0) }
    var isDir: ObjCBool = false
    if sources.count == 1, FileManager.default.fileExists(atPath: sources[0], isDirectory: &isDir), isDir.boolValue {
        try writer.addDirectory(sources[0])
    } else {
        let mode: EROFSWhiteoutMode = (merge || sources.count > 1) ? .apply : .overlay
        for source in sources { try writer.addLayer(tarPath: source, whiteouts: mode) }
    }
    let summary = try writer.finish()
    bar.done()
    print("\(output): \(summary.inodes) inodes, \(summary.imageBytes) bytes, \(summary.compressedFiles) compressed files")
} catch {
    bar.done()
    FileHandle.standardError.write(Data("erofs-convert: \(error)\n".utf8))
    exit(1)
}
