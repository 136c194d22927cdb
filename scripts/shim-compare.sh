#!/usr/bin/env bash
# Runs the same `ctr` scenarios with runc and with qemubox against a private
# containerd 1.6 and prints a Markdown table of outputs and exit codes
# (Documentation/shim.md keeps the result).
#
#   scripts/shim-compare.sh            # uses .build/debug/containerd-shim-qemubox-v1
# Needs root, containerd, runc, busybox-static, the guest kernel and image
# (QEMUBOX_GUEST_IMAGE or .build-guest/qemubox-guest.erofs).
set -uo pipefail
source "$(dirname "$0")/lib/private-containerd.sh"

# name|command (RUNTIME and ID substituted); output is stdout+stderr with newlines shown as ⏎.
scenarios=(
  "run --rm, output + exit code|$C run --rm --runtime RUNTIME $IMG ID sh -c 'echo out; echo err >&2; exit 7'"
  "run --rm true|$C run --rm --runtime RUNTIME $IMG ID true"
  "command not found|$C run --rm --runtime RUNTIME $IMG ID /nonexistent"
  "stdin to EOF (20 s limit)|printf 'a\nb\n' | timeout 20 $C run --rm --runtime RUNTIME $IMG ID sh -c 'cat; echo eof'"
  "environment (--env)|$C run --rm --env FOO=bar --runtime RUNTIME $IMG ID sh -c 'echo \$FOO'"
  "user (--user 1000)|$C run --rm --user 1000:1000 --runtime RUNTIME $IMG ID id"
  "cwd (--cwd /tmp)|$C run --rm --cwd /tmp --runtime RUNTIME $IMG ID pwd"
  "read-only rootfs|$C run --rm --read-only --runtime RUNTIME $IMG ID sh -c 'touch /x 2>/dev/null || echo ro'"
  "killed by signal|$C run --rm --runtime RUNTIME $IMG ID sh -c 'kill -9 \$\$'"
  "hostname|$C run --rm --runtime RUNTIME $IMG ID hostname"
  "exec in a running task|$C run -d --runtime RUNTIME $IMG ID sleep 100 >/dev/null && $C task exec --exec-id e1 ID sh -c 'echo in-exec; exit 5'; rc=\$?; $C task kill -s SIGKILL ID; sleep 1; $C task delete ID >/dev/null; $C container rm ID; exit \$rc"
  "pause / resume / status|$C run -d --runtime RUNTIME $IMG ID sleep 100 >/dev/null && $C task pause ID && $C task ls | awk '\$1==\"ID\"{print \$3}' && $C task resume ID && $C task ls | awk '\$1==\"ID\"{print \$3}'; $C task kill -s SIGKILL ID; sleep 1; $C task delete ID >/dev/null; $C container rm ID"
  "kill --all, then delete|$C run -d --runtime RUNTIME $IMG ID sh -c 'sleep 100 & sleep 100' >/dev/null && $C task kill --all -s SIGKILL ID && sleep 2 && $C task delete ID | awk '{print \$NF}'; $C container rm ID"
  "memory limit visible|$C run --rm --memory-limit 67108864 --runtime RUNTIME $IMG ID cat /sys/fs/cgroup/memory.max 2>/dev/null || echo n/a"
)

row() { printf '%s' "$1" | tr '\n' '⏎' | sed 's/|/\\|/g'; }
echo "| scenario | runc output | runc exit | qemubox output | qemubox exit | same |"
echo "|---|---|---|---|---|---|"
n=0
for entry in "${scenarios[@]}"; do
  name="${entry%%|*}"; cmd="${entry#*|}"
  declare -A out=() code=()
  for rt in io.containerd.runc.v2 io.containerd.qemubox.v1; do
    n=$((n + 1)); id="cmp$n"
    c="${cmd//RUNTIME/$rt}"; c="${c//ID/$id}"
    out[$rt]="$(timeout 180 bash -c "$c" 2>&1)"; code[$rt]=$?
    $C task kill -s SIGKILL "$id" >/dev/null 2>&1; $C task delete "$id" >/dev/null 2>&1; $C container rm "$id" >/dev/null 2>&1
  done
  r="${out[io.containerd.runc.v2]}"; q="${out[io.containerd.qemubox.v1]}"
  same=no; [ "$r" = "$q" ] && [ "${code[io.containerd.runc.v2]}" = "${code[io.containerd.qemubox.v1]}" ] && same=yes
  echo "| $name | \`$(row "$r")\` | ${code[io.containerd.runc.v2]} | \`$(row "$q")\` | ${code[io.containerd.qemubox.v1]} | $same |"
done
