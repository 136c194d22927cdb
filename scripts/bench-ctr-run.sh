#!/usr/bin/env bash
# `ctr run --rm IMAGE true` latency, runc vs qemubox, in one run against one
# private containerd 1.6 (interleaved, after one warm-up each; the first qemubox
# run also converts the image's layer to EROFS, later ones hit the cache).
# Prints each run, the medians and the ratio, and the shim's own timing lines
# (boot, agent, create, start, delete) for the breakdown.
#
# With --warm the shim restores VMs from a template (warm_start = true); the
# first qemubox run then also boots and saves the template.
# With --spares (implies --warm) one spare VM is kept ready (warm_spares = 1) and
# every qemubox run waits until one is before it starts: the figure for containers
# that come no faster than spares are replaced (about one a second here).
#
# With --pod every run (runc's too) is a pod sandbox as containerd's CRI plugin hands it
# to a runtime: CRI's sandbox annotations and a network namespace given by path that holds
# one interface with an address (made before the timed run, removed after it).
#
#   scripts/bench-ctr-run.sh [--warm | --spares] [--pod] [RUNS]     (default 7)
set -uo pipefail
spares=0
pod=0
while [ $# -gt 0 ]; do
    case "$1" in
        --warm) export PRIVATE_CONTAINERD_WARM=1; shift ;;
        --spares) export PRIVATE_CONTAINERD_WARM=1 PRIVATE_CONTAINERD_QEMUBOX="warm_spares = 1"; spares=1; shift ;;
        --pod) pod=1; shift ;;
        *) break ;;
    esac
done
runs="${1:-7}"
source "$(dirname "$0")/lib/private-containerd.sh"
now() { date +%s.%N; }
declare -a runc_t qbx_t
one() { # one RUNTIME → seconds (called in a subshell: the name comes from the clock)
    local n t0 t1
    n=$(date +%s%N)
    local flags=() ns="qbxbench$n"
    if [ "$pod" = 1 ]; then
        # eth0 is a veth whose peer sits in a second namespace of the run's own (as a CNI bridge's would on the host).
        ip netns add "$ns" && ip netns add "${ns}p" && ip -n "$ns" link add eth0 type veth peer name peer0 netns "${ns}p" \
            && ip -n "$ns" addr add 10.231.99.2/24 dev eth0 && ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up \
            || echo "namespace $ns not made" >&2
        flags=(--annotation io.kubernetes.cri.container-type=sandbox --annotation "io.kubernetes.cri.sandbox-id=bench$n"
               --with-ns "network:/run/netns/$ns")
    fi
    t0=$(now)
    $C run --rm --runtime "$1" "${flags[@]}" "$IMG" "bench$n" true >/dev/null 2>&1 || echo "run $n with $1 failed" >&2
    t1=$(now)
    [ "$pod" = 1 ] && ip netns delete "$ns" && ip netns delete "${ns}p"
    echo "$t1 - $t0" | bc
}
one io.containerd.runc.v2 >/dev/null
cold=$(one io.containerd.qemubox.v1)
echo "qemubox first run (layer → EROFS, cold cache${PRIVATE_CONTAINERD_WARM:+, template saved}): ${cold}s"
spare_ready() { # waits (up to 30 s) until a spare VM is ready for a claim
    [ "$spares" = 1 ] || return 0
    for _ in $(seq 300); do compgen -G "$dir/qb/.spares/*/claim.sock" >/dev/null && return 0; sleep 0.1; done
    echo "no spare VM got ready" >&2
}
for i in $(seq "$runs"); do
    r=$(one io.containerd.runc.v2); spare_ready; q=$(one io.containerd.qemubox.v1)
    runc_t+=("$r"); qbx_t+=("$q")
    echo "run $i: runc ${r}s, qemubox ${q}s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
mr=$(median "${runc_t[@]}"); mq=$(median "${qbx_t[@]}")
echo "median of $runs: runc ${mr}s, qemubox ${mq}s, ratio $(echo "scale=1; $mq / $mr" | bc)x"
[ "$spares" = 1 ] && echo "runs in a spare VM: $(grep -c 'runs in a spare VM' "$dir/containerd.log") of $((runs + 1)) qemubox runs"
echo "shim timing lines (last run):"
grep -E "in its VM|delete_s|started bench" "$dir/containerd.log" 2>/dev/null | tail -3 || true
