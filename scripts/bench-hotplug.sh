#!/usr/bin/env bash
# What resizing costs, in one private containerd: containerd's `task.Update` (through its
# Go client, Tests/Peers/go/containerd-client) adding and taking back one vCPU and 512 MiB of
# a qemubox container's VM, against runc's Update of the same limits (a cgroup write, the
# peer); and what the hotplug-capable machine costs at start: `ctr run --rm … true` on a
# q35 with ceilings vs the default microvm. Prints each run, the medians and the ratios.
#
#   scripts/bench-hotplug.sh [RUNS]     (default 5)
set -uo pipefail
runs="${1:-5}"
PRIVATE_CONTAINERD_QEMUBOX='max_vcpus = 4\nmax_memory_mib = 2048'
source "$(dirname "$0")/lib/private-containerd.sh"
client="$root/.build/peers/containerd-client"
if [ ! -x "$client" ]; then
    mkdir -p "$root/.build/peers"
    (cd "$root/Tests/Peers/go/containerd-client" && GO111MODULE=off GOPATH=/usr/share/gocode \
        GOCACHE="$root/.build/peers/gocache" go build -o "$client" .) || exit 1
fi
now() { date +%s.%N; }
update() { # update ID ARGS… → seconds, as the client measured the call
    "$client" -address "$dir/c.sock" -namespace bench update "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])'
}
limits="--cpus 1 --memory-limit $((256 << 20))"
# shellcheck disable=SC2086
$C run -d $limits --runtime io.containerd.qemubox.v1 "$IMG" hq sleep 100000 >/dev/null || { echo "qemubox container did not start" >&2; exit 1; }
# shellcheck disable=SC2086
$C run -d $limits --runtime io.containerd.runc.v2 "$IMG" hr sleep 100000 >/dev/null || { echo "runc container did not start" >&2; exit 1; }
declare -a cpu_add cpu_del mem_add mem_del runc_t q35_t microvm_t
n=0
boot() { # boot q35|microvm → seconds of `ctr run --rm … true`
    n=$((n + 1))
    local flags="--runtime io.containerd.qemubox.v1"
    [ "$1" = microvm ] && flags="$flags --annotation io.qemubox.hotplug=false"
    local t0 t1
    t0=$(now)
    # shellcheck disable=SC2086
    $C run --rm $flags "$IMG" "hb$n" true >/dev/null 2>&1 || echo "run $n ($1) failed" >&2
    t1=$(now)
    echo "$t1 - $t0" | bc
}
# The first +1 vCPU plugs a vCPU into QEMU; later ones online it again (shrinking only
# takes vCPUs offline: QEMU 7.2 under TCG aborts when a slot is plugged twice).
plug=$(update hq -cpus 2); update hq -cpus 1 >/dev/null; boot q35 >/dev/null; boot microvm >/dev/null
echo "first +1 vCPU (device_add, ACPI, online): ${plug}s"
for i in $(seq "$runs"); do
    a=$(update hq -cpus 2); b=$(update hq -cpus 1)
    c=$(update hq -memory-mib 768); d=$(update hq -memory-mib 256)
    r=$(update hr -cpus 2); update hr -cpus 1 >/dev/null
    q=$(boot q35); m=$(boot microvm)
    cpu_add+=("$a"); cpu_del+=("$b"); mem_add+=("$c"); mem_del+=("$d"); runc_t+=("$r"); q35_t+=("$q"); microvm_t+=("$m")
    printf 'run %d: +1 vCPU %.3fs, -1 vCPU %.3fs, +512 MiB %.3fs, -512 MiB %.3fs, runc update %.3fs; run q35 %.2fs, microvm %.2fs\n' \
        "$i" "$a" "$b" "$c" "$d" "$r" "$q" "$m"
done
for id in hq hr; do
    $C task kill -s SIGKILL "$id" >/dev/null 2>&1
    for _ in $(seq 50); do $C task delete "$id" >/dev/null 2>&1 && break; sleep 0.2; done
    $C container rm "$id" >/dev/null 2>&1
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ca=$(median "${cpu_add[@]}"); cd=$(median "${cpu_del[@]}"); ma=$(median "${mem_add[@]}"); md=$(median "${mem_del[@]}")
rt=$(median "${runc_t[@]}"); qt=$(median "${q35_t[@]}"); mt=$(median "${microvm_t[@]}")
echo "median of $runs: Update +1 vCPU (online again) ${ca}s ($(echo "scale=1; $ca / $rt" | bc)× runc's ${rt}s), -1 vCPU ${cd}s,"
echo "  +512 MiB ${ma}s ($(echo "scale=1; $ma / $rt" | bc)× runc), -512 MiB ${md}s;"
echo "  ctr run --rm true: q35 with ceilings ${qt}s vs microvm ${mt}s ($(echo "scale=2; $qt / $mt" | bc)×)"
