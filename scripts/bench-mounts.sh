#!/usr/bin/env bash
# What host bind mounts cost: `ctr run --rm IMAGE cat …` with qemubox, in one private
# containerd, alternating: no mount (the peer), a read-only ConfigMap-like directory
# (copied into the VM with System/SyncTree), and a read-write directory (virtio-fs: a
# virtiofsd per directory, shared memfd RAM). Prints each run, the medians and the ratios.
#
#   scripts/bench-mounts.sh [RUNS]     (default 5)
set -uo pipefail
runs="${1:-5}"
source "$(dirname "$0")/lib/private-containerd.sh"
data="$dir/mounts"   # inside the private containerd's directory: removed with it
mkdir -p "$data/ro/..1" "$data/rw"
for i in $(seq 20); do head -c 4096 /dev/urandom >"$data/ro/..1/key$i"; ln -s "..data/key$i" "$data/ro/key$i"; done
ln -s ..1 "$data/ro/..data"
echo hello >"$data/rw/file"
now() { date +%s.%N; }
declare -a none_t ro_t rw_t
n=0
one() { # one none|ro|rw → seconds
    n=$((n + 1))
    local mount="" file=/etc/hostname
    case "$1" in
        ro) mount="--mount type=bind,src=$data/ro,dst=/cm,options=rbind:ro"; file=/cm/key1 ;;
        rw) mount="--mount type=bind,src=$data/rw,dst=/data,options=rbind:rw"; file=/data/file ;;
    esac
    local t0 t1
    t0=$(now)
    # shellcheck disable=SC2086
    $C run --rm $mount --runtime io.containerd.qemubox.v1 "$IMG" "mnt$n" cat "$file" >/dev/null 2>&1 \
        || echo "run $n ($1) failed" >&2
    t1=$(now)
    echo "$t1 - $t0" | bc
}
one none >/dev/null; one ro >/dev/null; one rw >/dev/null
for i in $(seq "$runs"); do
    a=$(one none); b=$(one ro); c=$(one rw)
    none_t+=("$a"); ro_t+=("$b"); rw_t+=("$c")
    echo "run $i: no mount ${a}s, read-only copy ${b}s, read-write virtio-fs ${c}s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
m0=$(median "${none_t[@]}"); m1=$(median "${ro_t[@]}"); m2=$(median "${rw_t[@]}")
echo "median of $runs: no mount ${m0}s, read-only copy ${m1}s ($(echo "scale=3; $m1 / $m0" | bc)×), read-write virtio-fs ${m2}s ($(echo "scale=3; $m2 / $m0" | bc)×)"
