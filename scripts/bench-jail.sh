#!/usr/bin/env bash
# What the QEMU jail costs: `ctr run --rm IMAGE true` with qemubox, jail on and off
# alternating in one private containerd (the shim reads its config file at every
# start, so each run toggles `[jail] enabled`). With --warm the VMs are restored
# from a template: the jailed clone copies the template's RAM data first, the
# unjailed one maps the template (Documentation/security.md § Template RAM).
# Prints each run, the medians and the ratio.
#
#   scripts/bench-jail.sh [--warm] [RUNS]     (default 7)
set -uo pipefail
if [ "${1:-}" = "--warm" ]; then
    export PRIVATE_CONTAINERD_WARM=1
    shift
fi
runs="${1:-7}"
source "$(dirname "$0")/lib/private-containerd.sh"
base="$(cat "$dir/qemubox.toml")"
now() { date +%s.%N; }
declare -a on_t off_t
n=0
one() { # one on|off → seconds
    n=$((n + 1))
    if [ "$1" = off ]; then
        printf '%s\n[jail]\nenabled = false\n' "$base" >"$dir/qemubox.toml"
    else
        printf '%s\n' "$base" >"$dir/qemubox.toml"
    fi
    local t0 t1
    t0=$(now)
    $C run --rm --runtime io.containerd.qemubox.v1 "$IMG" "jail$n" true >/dev/null 2>&1 || echo "run $n (jail $1) failed" >&2
    t1=$(now)
    echo "$t1 - $t0" | bc
}
one on >/dev/null
one off >/dev/null
for i in $(seq "$runs"); do
    a=$(one on); b=$(one off)
    on_t+=("$a"); off_t+=("$b")
    echo "run $i: jailed ${a}s, unjailed ${b}s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
mon=$(median "${on_t[@]}"); moff=$(median "${off_t[@]}")
echo "median of $runs${PRIVATE_CONTAINERD_WARM:+ (warm start)}: jailed ${mon}s, unjailed ${moff}s, ratio $(echo "scale=3; $mon / $moff" | bc)"
