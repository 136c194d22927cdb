// qemubox: the operator command (check, ps, console, logs, cache, templates, convert,
// inspect). All logic is in QemuboxOperator.
#if canImport(Glibc)
import Glibc
#endif
import QemuboxOperator

exit(await QemuboxOperator.main(Array(CommandLine.arguments.dropFirst())))
