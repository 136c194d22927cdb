// vminitd: the guest's PID 1 and agent. All logic lives in GuestAgent.
//
// Synchronous first: the mounts (/proc above all) and the signal mask are in place
// before the first thread exists (see PID1.prepare); only then does Swift
// concurrency start, with the main queue served by dispatchMain().
import Dispatch
import GuestAgent

let controllers = PID1.prepare()
Task { await GuestAgent.runAsPID1(controllers: controllers) }
dispatchMain()
