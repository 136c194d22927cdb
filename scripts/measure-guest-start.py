#!/usr/bin/env python3
"""Boots a qemubox guest image under QEMU TCG (microvm) N times and reports, per run,
the host-side time between the console lines 'Run /sbin/vminitd' (kernel) and
'vminitd: agent ... up', and the median.

Usage: scripts/measure-guest-start.py IMAGE RUNS
(Documentation/performance.md, "Guest agent start")."""
import os, subprocess, sys, tempfile, time, statistics, re
image, runs = sys.argv[1], int(sys.argv[2])
kernel = "/var/cache/qemubox/kernel/current/vmlinux"
mhz = float(re.search(r"cpu MHz\s*:\s*([0-9.]+)", open("/proc/cpuinfo").read()).group(1))
results = []
for i in range(runs):
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "agent.sock")
        argv = ["qemu-system-x86_64", "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on",
                "-accel", "tcg,thread=multi", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-smp", "1", "-m", "256M", "-kernel", kernel,
                "-append", f"console=ttyS0 panic=-1 tsc_early_khz={int(mhz*1000)} root=/dev/vda rootfstype=erofs ro init=/sbin/vminitd",
                "-serial", "stdio",
                "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-device,rng=rng0",
                "-drive", f"file={image},if=none,id=qemubox-system,format=raw,readonly=on",
                "-device", "virtio-blk-device,drive=qemubox-system,serial=qemubox-system",
                "-device", "virtio-serial-device,id=vser0",
                "-chardev", f"socket,id=vport0,path={sock},server=on,wait=off",
                "-device", "virtserialport,bus=vser0.0,chardev=vport0,name=org.qemubox.agent"]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        t0 = time.monotonic(); run = up = None
        try:
            for raw in p.stdout:
                line = raw.decode(errors="replace")
                now = time.monotonic()
                if run is None and "Run /sbin/vminitd" in line: run = now
                if "vminitd: agent" in line and " up" in line: up = now; break
                if now - t0 > 60: break
        finally:
            p.kill(); p.wait()
        if run is None or up is None:
            print(f"run {i+1}: incomplete (run={run}, up={up})"); continue
        results.append(up - run)
        print(f"run {i+1}: vminitd start {up-run:.3f} s (boot to up {up-t0:.3f} s)", flush=True)
if results:
    print(f"median {statistics.median(results):.3f} s over {len(results)} runs: " + " ".join(f"{r:.3f}" for r in results))
