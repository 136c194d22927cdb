#if canImport(Glibc)
import Glibc
#endif
import CFuzzerDriver
import QemuboxFuzzTargets

/// libFuzzer's per-input callback for the `yamux-session` target.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.run("yamux-session", UnsafeBufferPointer(start: data, count: size))
    return 0
}

/// Hands the command line to libFuzzer's driver. (SwiftPM links executables with
/// `main` bound to the module's entry point, so libFuzzer's own `main` cannot be
/// used; its driver does the same work.)
@main
enum Fuzzer {
    static func main() {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzz))
    }
}
