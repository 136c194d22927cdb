#!/usr/bin/env bash
# Container networking, runc vs qemubox, in one run against one private containerd
# 1.6 running in a network namespace this script makes (its bridge, addresses and
# traffic never leave it). Both containers get their network from `ctr run --cni`
# (bridge + host-local, Debian's containernetworking-plugins).
#
# Prints, per runtime and as qemubox/runc ratios:
#   - TCP throughput host → container (MiB/s, 64 MiB into `nc -l > /dev/null`, best of 3)
#   - TCP round trip host ↔ container (median of 500 one-byte echoes on one connection)
#   - `ctr run --rm … true` with --cni and without (median of RUNS): what networking adds
#
#   scripts/bench-network.sh [RUNS]     (default 5; needs root and a built shim)
set -uo pipefail
runs="${1:-5}"
ns="qbxbench$$"
ip netns add "$ns" || exit 1
ip -n "$ns" link set lo up
conf="$(mktemp -d /tmp/qbx-bench-cni.XXXXXX)"
made=()
for d in /etc/cni/net.d /opt/cni/bin; do
    [ -d "$d" ] || { mkdir -p "$d"; made+=("$d"); }
done
cat >"$conf/10-bench.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "qbxbench", "plugins": [
  {"type": "bridge", "bridge": "qbxbench0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.240.9.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$conf/ipam"}}]}
JSON
export PRIVATE_CONTAINERD_NETNS="/run/netns/$ns" PRIVATE_CONTAINERD_CNI_CONF="$conf"
source "$(dirname "$0")/lib/private-containerd.sh"
bench_cleanup() {
    for id in $($C task ls -q 2>/dev/null); do $C task kill -s SIGKILL "$id" >/dev/null 2>&1; done
    sleep 1
    for id in $($C task ls -q 2>/dev/null); do $C task delete "$id" >/dev/null 2>&1; done
    for id in $($C container ls -q 2>/dev/null); do $C container rm "$id" >/dev/null 2>&1; done
    private_containerd_cleanup
    ip netns delete "$ns"
    rm -rf "$conf"
    for d in "${made[@]}"; do rmdir "$d" "$(dirname "$d")" 2>/dev/null; done
}
trap bench_cleanup EXIT
inns() { nsenter --net="/run/netns/$ns" "$@"; }
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

declare -A tput rtt with without
for rt in runc qemubox; do
    runtime="io.containerd.$rt.v$([ "$rt" = runc ] && echo 2 || echo 1)"
    $C run -d --cni --runtime "$runtime" "$IMG" "srv-$rt" sh -c \
        'nc -ll -p 9001 -e cat & while true; do nc -l -p 9000 > /dev/null; done' >/dev/null || { echo "$rt: run failed" >&2; exit 1; }
    addr=$($C task exec --exec-id ip "srv-$rt" ip -4 -o addr show eth0 | sed -n 's/.*inet \([0-9.]*\).*/\1/p')
    out=$(inns python3 - "$addr" <<'PY'
import socket, statistics, sys, time
addr = sys.argv[1]
def connect(port):
    for _ in range(100):
        try:
            return socket.create_connection((addr, port), timeout=10)
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"cannot connect to {addr}:{port}")
best = 0.0
chunk = b"\0" * (1 << 20)
for _ in range(3):
    s = connect(9000)
    t0 = time.perf_counter()
    for _ in range(64):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # EOF once the server has read everything and closed
    best = max(best, 64 / (time.perf_counter() - t0))
    s.close()
    time.sleep(0.3)
s = connect(9001)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
times = []
for i in range(550):
    t0 = time.perf_counter()
    s.sendall(b"x")
    if s.recv(1) != b"x":
        raise SystemExit("echo broke")
    if i >= 50:
        times.append(time.perf_counter() - t0)
print(f"{best:.1f} {statistics.median(times) * 1e6:.0f}")
PY
)
    tput[$rt]=${out% *}; rtt[$rt]=${out#* }
    echo "$rt: TCP host → container ${tput[$rt]} MiB/s, round trip ${rtt[$rt]} µs ($addr)"
    $C task kill -s SIGKILL "srv-$rt" >/dev/null; sleep 1
    $C task delete "srv-$rt" >/dev/null; $C container rm "srv-$rt" >/dev/null
done

n=0
one() { # one RUNTIME [--cni] → seconds
    n=$((n + 1)); local t0 t1
    t0=$(now)
    $C run --rm $2 --runtime "$1" "$IMG" "c$n" true >/dev/null 2>&1 || echo "run $n ($1 $2) failed" >&2
    t1=$(now)
    echo "$t1 - $t0" | bc
}
for rt in io.containerd.runc.v2 io.containerd.qemubox.v1; do one "$rt" --cni >/dev/null; done
declare -a rn rc qn qc
for i in $(seq "$runs"); do
    rn+=("$(one io.containerd.runc.v2 "")"); rc+=("$(one io.containerd.runc.v2 --cni)")
    qn+=("$(one io.containerd.qemubox.v1 "")"); qc+=("$(one io.containerd.qemubox.v1 --cni)")
done
mrn=$(median "${rn[@]}"); mrc=$(median "${rc[@]}"); mqn=$(median "${qn[@]}"); mqc=$(median "${qc[@]}")
echo
echo "| | runc | qemubox | qemubox / runc |"
echo "|---|---|---|---|"
echo "| TCP host → container, MiB/s (best of 3 × 64 MiB) | ${tput[runc]} | ${tput[qemubox]} | $(echo "scale=2; ${tput[qemubox]} / ${tput[runc]}" | bc) |"
echo "| TCP round trip, µs (median of 500) | ${rtt[runc]} | ${rtt[qemubox]} | $(echo "scale=1; ${rtt[qemubox]} / ${rtt[runc]}" | bc) |"
echo "| \`ctr run --rm … true\`, s (median of $runs) | $mrn | $mqn | $(echo "scale=1; $mqn / $mrn" | bc) |"
echo "| \`ctr run --rm --cni … true\`, s (median of $runs) | $mrc | $mqc | $(echo "scale=1; $mqc / $mrc" | bc) |"
echo "| what --cni adds, s | $(echo "$mrc - $mrn" | bc) | $(echo "$mqc - $mqn" | bc) | |"
