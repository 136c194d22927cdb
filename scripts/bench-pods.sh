#!/usr/bin/env bash
# What a pod saves: `ctr run --rm IMAGE true` with qemubox, in one private containerd,
# alternating a container that boots a VM of its own (the peer) and a container that joins
# a running pod's VM (CRI's annotations, as containerd's CRI plugin sets them: its disks
# are added to the running VM). runc's time is printed for reference. Prints each run, the
# medians and the ratios.
#
#   scripts/bench-pods.sh [RUNS]     (default 5)
set -uo pipefail
runs="${1:-5}"
source "$(dirname "$0")/lib/private-containerd.sh"
now() { date +%s.%N; }
pod="--annotation io.kubernetes.cri.sandbox-id=benchpod"
$C run -d --annotation io.kubernetes.cri.container-type=sandbox $pod \
    --runtime io.containerd.qemubox.v1 "$IMG" benchpod sleep 100000 >/dev/null \
    || { echo "the pod's sandbox did not start" >&2; exit 1; }
declare -a own_t join_t runc_t
n=0
one() { # one own|join|runc → seconds
    n=$((n + 1))
    local flags="--runtime io.containerd.qemubox.v1"
    case "$1" in
        join) flags="$flags --annotation io.kubernetes.cri.container-type=container $pod" ;;
        runc) flags="--runtime io.containerd.runc.v2" ;;
    esac
    local t0 t1
    t0=$(now)
    # shellcheck disable=SC2086
    $C run --rm $flags "$IMG" "pb$n" true >/dev/null 2>&1 || echo "run $n ($1) failed" >&2
    t1=$(now)
    echo "$t1 - $t0" | bc
}
one own >/dev/null; one join >/dev/null; one runc >/dev/null
for i in $(seq "$runs"); do
    a=$(one own); b=$(one join); c=$(one runc)
    own_t+=("$a"); join_t+=("$b"); runc_t+=("$c")
    echo "run $i: own VM ${a}s, joining the pod's VM ${b}s, runc ${c}s"
done
$C task kill -s SIGKILL benchpod >/dev/null 2>&1
for _ in $(seq 50); do $C task delete benchpod >/dev/null 2>&1 && break; sleep 0.2; done
$C container rm benchpod >/dev/null 2>&1
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
m0=$(median "${own_t[@]}"); m1=$(median "${join_t[@]}"); m2=$(median "${runc_t[@]}")
echo "median of $runs: own VM ${m0}s, joining the pod's VM ${m1}s ($(echo "scale=3; $m1 / $m0" | bc)× own VM), runc ${m2}s (joining: $(echo "scale=2; $m1 / $m2" | bc)× runc)"
