// vminitd: the guest's PID 1 and agent. All logic lives in GuestAgent.
import GuestAgent

await GuestAgent.runAsPID1()
