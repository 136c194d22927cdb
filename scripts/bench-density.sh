#!/usr/bin/env bash
# Density and soak, through one private containerd 1.6 with warm start on.
#
#   scripts/bench-density.sh [--containers N] [--soak CYCLES] [--keep-going]
#
# --containers N (default 20): after one warm-up run (which saves the template), N
#   `ctr run -d … sleep` are started in one burst (all at once, in the background);
#   the script reports when the last one is running, checks that every container
#   answers `ctr task exec`, prints each QEMU's and each shim's PSS (from
#   /proc/PID/smaps_rollup) after the VMs have idled for 5 s, then deletes them all and
#   checks nothing is left: no shim, no QEMU, no mount under the private root, no VM
#   state directory.
# --soak CYCLES (default 0): CYCLES sequential `ctr run --rm … true`, sampling every
#   CYCLES/10 cycles containerd's open fds and threads, the host's process count, the
#   mount table's length and the number of files under the private root and in /tmp.
#   The counts must end where they started (± what a sample catches in flight); the
#   baseline is taken after one cycle.
#
# SHIM selects the shim binary (default .build/debug; a release build measures what
# ships: `swift build -c release --product containerd-shim-qemubox-v1`, then
# SHIM=$PWD/.build/release/containerd-shim-qemubox-v1).
set -uo pipefail
containers=20 soak=0
while [ $# -gt 0 ]; do
    case "$1" in
    --containers) containers="$2"; shift 2 ;;
    --soak) soak="$2"; shift 2 ;;
    *) echo "usage: $0 [--containers N] [--soak CYCLES]" >&2; exit 2 ;;
    esac
done
export PRIVATE_CONTAINERD_WARM=1
source "$(dirname "$0")/lib/private-containerd.sh"
status=0
fail() { echo "FAIL: $*" >&2; status=1; }
now() { date +%s.%N; }

# Shims of this containerd (their argv names its socket) and everything below them.
shim_pids() { pgrep -f -- "containerd-shim-qemubox-v1 .*-address $dir/c.sock" || true; }
descendants() { # PID… → all descendants
    local p
    for p in "$@"; do
        local kids
        kids=$(pgrep -P "$p" || true)
        [ -n "$kids" ] && { echo "$kids"; descendants $kids; }
    done
}
qemu_pids() { # QEMU processes below this containerd's shims
    local p
    for p in $(descendants $(shim_pids)); do
        case "$(readlink "/proc/$p/exe" 2>/dev/null)" in *qemu-system-*) echo "$p" ;; esac
    done
    return 0
}
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

t0=$(now)
$C run --rm --runtime io.containerd.qemubox.v1 "$IMG" warmup true >/dev/null 2>&1 || fail "warm-up run"
echo "warm-up (template saved): $(echo "$(now) - $t0" | bc) s"

if [ "$containers" -gt 0 ]; then
    t0=$(now)
    pids=()
    for i in $(seq "$containers"); do
        $C run -d --runtime io.containerd.qemubox.v1 "$IMG" "d$i" sleep 100000 >"$dir/run-$i.log" 2>&1 &
        pids+=($!)
    done
    failed=0
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { failed=$((failed + 1)); fail "ctr run -d d$((i + 1)): $(tail -1 "$dir/run-$((i + 1)).log")"; }
    done
    t1=$(now)
    echo "burst of $containers: all \`ctr run -d\` returned after $(echo "$t1 - $t0" | bc) s ($failed failed)"
    running=$($C task ls | awk '$3 == "RUNNING"' | wc -l)
    echo "running tasks: $running of $containers"
    [ "$running" = "$containers" ] || fail "$running of $containers running"
    t0=$(now); answered=0
    for i in $(seq "$containers"); do
        out=$($C task exec --exec-id "e$i" "d$i" echo "ok$i" 2>&1)
        [ "$out" = "ok$i" ] && answered=$((answered + 1)) || fail "exec in d$i: $out"
    done
    echo "exec answered: $answered of $containers ($(echo "$(now) - $t0" | bc) s for all, one after another)"
    # Let the VMs idle (no sleep as synchronisation: this is the measured idle time).
    sleep 5
    qemu_pss=(); shim_pss=()
    for p in $(qemu_pids); do qemu_pss+=("$(pss_kib "$p")"); done
    for p in $(shim_pids); do shim_pss+=("$(pss_kib "$p")"); done
    echo "QEMU processes: ${#qemu_pss[@]}, shims: ${#shim_pss[@]}"
    echo "QEMU PSS KiB: ${qemu_pss[*]}"
    echo "shim PSS KiB: ${shim_pss[*]}"
    echo "median PSS: QEMU $(printf '%s\n' "${qemu_pss[@]}" | median | awk '{printf "%.1f", $1/1024}') MiB," \
        "shim $(printf '%s\n' "${shim_pss[@]}" | median | awk '{printf "%.1f", $1/1024}') MiB"
    # Where one QEMU's PSS goes (the first one; they are alike).
    first=$(qemu_pids | head -1)
    [ -n "$first" ] && python3 - "$first" <<'PY'
import re, sys
pid = sys.argv[1]
cat = {}
cur = None
for line in open(f"/proc/{pid}/smaps"):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
    if m:
        perms, name = m.group(3), m.group(4)
        if "memfd:qemubox-template" in name: cur = "guest RAM"
        elif name == "" and "x" in perms: cur = "TCG translated code"
        elif name == "[heap]": cur = "QEMU heap"
        elif name == "": cur = "other anonymous (malloc arenas, stacks)"
        else: cur = "binaries and libraries"
        continue
    if cur and line.startswith("Pss:"):
        cat[cur] = cat.get(cur, 0) + int(line.split()[1])
    if cur == "guest RAM" and line.startswith("Anonymous:"):
        cat["  of which written by this guest"] = cat.get("  of which written by this guest", 0) + int(line.split()[1])
print("PSS of QEMU %s by kind: " % pid + ", ".join(f"{k} {v/1024:.1f} MiB" for k, v in cat.items()))
PY
    echo "host memory used (MemTotal - MemAvailable): $(awk '/MemTotal/ {t=$2} /MemAvailable/ {a=$2} END {printf "%.0f", (t-a)/1024}' /proc/meminfo) MiB"
    t0=$(now); pids=()
    for i in $(seq "$containers"); do
        ( $C task kill -s SIGKILL "d$i" >/dev/null 2>&1
          for _ in $(seq 100); do $C task ls | grep -q "^d$i .*STOPPED" && break; sleep 0.1; done
          $C task delete "d$i" >/dev/null 2>&1 || echo "task delete d$i failed" >&2
          $C container delete "d$i" >/dev/null 2>&1 || echo "container delete d$i failed" >&2 ) &
        pids+=($!)
    done
    wait "${pids[@]}"   # not a bare wait: containerd is a child too
    echo "all deleted after $(echo "$(now) - $t0" | bc) s"
    left_shims=$(shim_pids | wc -l); left_qemu=$(qemu_pids | wc -l)
    left_mounts=$(grep -c " $dir" /proc/self/mountinfo || true)
    left_vms=$(find "$dir/qb" -mindepth 2 -maxdepth 2 -type d 2>/dev/null | grep -cv -e /cache -e /templates || true)
    echo "left: shims $left_shims, QEMU $left_qemu, mounts $left_mounts, VM directories $left_vms"
    [ "$left_shims$left_qemu$left_mounts" = 000 ] || fail "resources left after delete"
fi

if [ "$soak" -gt 0 ]; then
    cpid_now=$(pgrep -f "containerd --config $dir/containerd.toml" | head -1)
    counts() {
        printf '%s %s %s %s %s %s\n' \
            "$(ls /proc/$cpid_now/fd | wc -l)" "$(ls /proc/$cpid_now/task | wc -l)" \
            "$(ls -d /proc/[0-9]* | wc -l)" "$(wc -l </proc/self/mountinfo)" \
            "$(find "$dir" -path "$dir/root/io.containerd.content.v1.content" -prune -o -print | wc -l)" \
            "$(ls -A /tmp | wc -l)"
    }
    # Baseline after one cycle, once whatever an earlier phase started has settled.
    $C run --rm --runtime io.containerd.qemubox.v1 "$IMG" s0 true >/dev/null 2>&1 || fail "soak warm-up cycle"
    echo "soak: $soak cycles of \`ctr run --rm … true\`"
    echo "cycle containerd_fds containerd_threads host_processes mounts files_under_root tmp_entries"
    echo "0 $(counts)"
    every=$(( soak >= 10 ? soak / 10 : 1 ))
    t0=$(now)
    for c in $(seq "$soak"); do
        $C run --rm --runtime io.containerd.qemubox.v1 "$IMG" "s$c" true >/dev/null 2>&1 || fail "soak cycle $c"
        [ $((c % every)) = 0 ] && echo "$c $(counts)"
    done
    echo "soak: $soak cycles in $(echo "$(now) - $t0" | bc) s"
    left_shims=$(shim_pids | wc -l)
    [ "$left_shims" = 0 ] || fail "$left_shims shims left after the soak"
fi
exit $status
