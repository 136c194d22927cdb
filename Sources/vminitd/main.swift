// vminitd: the guest's PID 1 and agent. All logic lives in GuestAgent.
// (/proc and the signal mask are set up before main: see PID1.prepare.)
import GuestAgent

await GuestAgent.runAsPID1(controllers: PID1.prepare())
