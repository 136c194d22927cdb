#ifndef QEMUBOX_CFUZZERDRIVER_H
#define QEMUBOX_CFUZZERDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (in the -sanitize=fuzzer runtime): parses the libFuzzer
/// command line and fuzzes `callback` until done; returns the exit status.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
