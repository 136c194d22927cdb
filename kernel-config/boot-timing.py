#!/usr/bin/env python3
"""Measures how fast the guest kernel boots under QEMU microvm (TCG).

Builds a throwaway initramfs (busybox-static and an /init that prints one line
and powers off), boots it N times and reports, per run and as medians, the
seconds from QEMU's exec to the first line /init prints and to QEMU's exit.

Usage: kernel-config/boot-timing.py [--runs 5] [--kernel PATH] [--accel tcg]
                                    [--append "extra kernel args"]
The kernel defaults to $QEMUBOX_GUEST_KERNEL or
/var/cache/qemubox/kernel/current/vmlinux. Needs qemu-system-x86_64,
busybox-static and cpio.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

INIT = """#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo QBX-FIRST-INIT-LINE
/bin/busybox poweroff -f
"""


def tsc_early_khz():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    return None


def make_initramfs(directory):
    root = os.path.join(directory, "root")
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(os.path.join(root, "dev"))
    shutil.copy(shutil.which("busybox"), os.path.join(root, "bin", "busybox"))
    with open(os.path.join(root, "init"), "w") as init:
        init.write(INIT)
    os.chmod(os.path.join(root, "init"), 0o755)
    archive = os.path.join(directory, "initramfs.cpio")
    with open(archive, "wb") as out:
        files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=root, check=True,
                               capture_output=True).stdout
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=root,
                       input=files, stdout=out, check=True)
    return archive


def boot(kernel, initrd, accel, append):
    cmdline = "console=ttyS0 panic=-1 quiet"
    khz = tsc_early_khz()
    if khz:
        cmdline += f" tsc_early_khz={khz}"
    if append:
        cmdline += " " + append
    args = ["qemu-system-x86_64",
            "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on", "-accel", accel,
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-smp", "1", "-m", "256", "-kernel", kernel, "-initrd", initrd,
            "-append", cmdline, "-serial", "stdio",
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng0"]
    start = time.monotonic()
    qemu = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    first = None
    try:
        for raw in qemu.stdout:
            if first is None and b"QBX-FIRST-INIT-LINE" in raw:
                first = time.monotonic() - start
        qemu.wait(timeout=120)
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
    total = time.monotonic() - start
    if first is None or qemu.returncode != 0:
        raise SystemExit(f"boot failed (exit {qemu.returncode}, first line {first})")
    return first, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kernel", default=os.environ.get(
        "QEMUBOX_GUEST_KERNEL", "/var/cache/qemubox/kernel/current/vmlinux"))
    parser.add_argument("--accel", default="tcg")
    parser.add_argument("--append", default="", help="extra kernel command line arguments")
    options = parser.parse_args()
    if not os.path.isfile(options.kernel):
        raise SystemExit(f"no kernel at {options.kernel}; run kernel-config/build.sh")
    with tempfile.TemporaryDirectory(prefix="qemubox-boot-timing.") as directory:
        initrd = make_initramfs(directory)
        firsts, totals = [], []
        for run in range(options.runs):
            first, total = boot(options.kernel, initrd, options.accel, options.append)
            firsts.append(first)
            totals.append(total)
            print(f"run {run + 1}: first init line {first:.2f} s, poweroff (QEMU exit) {total:.2f} s")
    size = os.path.getsize(options.kernel)
    print(f"median of {options.runs}: first init line {statistics.median(firsts):.2f} s, "
          f"poweroff {statistics.median(totals):.2f} s; vmlinux {size} bytes "
          f"({size / 1e6:.1f} MB) at {os.path.realpath(options.kernel)}")


if __name__ == "__main__":
    sys.exit(main())
