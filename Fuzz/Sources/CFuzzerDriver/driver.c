// Declarations only (include/CFuzzerDriver.h): libFuzzer's runtime defines
// LLVMFuzzerRunDriver. SwiftPM needs one source file per C target.
#include "CFuzzerDriver.h"
