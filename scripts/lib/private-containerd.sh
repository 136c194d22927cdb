# Sourced by scripts that drive a private containerd 1.6 with runc and qemubox:
# starts containerd with its own root, state, sockets and opt dir in a temp dir
# (CRI disabled), qemubox configured through $dir/qemubox.toml, imports a
# busybox image, and removes everything on exit. Sets: dir, C (the ctr command
# line), IMG. Needs root, containerd, ctr, runc, busybox-static, python3, the
# shim ($SHIM or .build/debug/containerd-shim-qemubox-v1), the guest kernel and
# image (QEMUBOX_GUEST_IMAGE or .build-guest/qemubox-guest.erofs).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
shim="${SHIM:-$root/.build/debug/containerd-shim-qemubox-v1}"
image_file="${QEMUBOX_GUEST_IMAGE:-$root/.build-guest/qemubox-guest.erofs}"
[ -x "$shim" ] || { echo "no shim at $shim (swift build --product containerd-shim-qemubox-v1)" >&2; exit 1; }
dir="$(mktemp -d /tmp/qbx-ctrd.XXXXXX)"
mkdir -p "$dir/opt/bin"
ln -s "$shim" "$dir/opt/bin/containerd-shim-qemubox-v1"
cat >"$dir/containerd.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/c.sock"
[ttrpc]
  address = "$dir/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
TOML
cat >"$dir/qemubox.toml" <<TOML
state_dir = "$dir/qb"
cache_dir = "$dir/cache"
writable_layer_mib = 256
guest_image = "$image_file"
TOML
# PRIVATE_CONTAINERD_QEMUBOX: extra lines for qemubox.toml (e.g. "[network]\nnic_slots = 0").
[ -n "${PRIVATE_CONTAINERD_QEMUBOX:-}" ] && printf '%b\n' "$PRIVATE_CONTAINERD_QEMUBOX" >>"$dir/qemubox.toml"
if [ "${PRIVATE_CONTAINERD_WARM:-0}" = 1 ]; then
    printf 'warm_start = true\ntemplate_dir = "%s"\n' "$dir/templates" >>"$dir/qemubox.toml"
fi
# PRIVATE_CONTAINERD_NETNS=/run/netns/NAME: containerd, its shims and ctr run in that
# network namespace; ctr then sees PRIVATE_CONTAINERD_CNI_CONF as /etc/cni/net.d and
# /usr/lib/cni as /opt/cni/bin (for `ctr run --cni`), in a mount namespace of its own.
enter=()
ctr_cmd=ctr
if [ -n "${PRIVATE_CONTAINERD_NETNS:-}" ]; then
    enter=(nsenter "--net=$PRIVATE_CONTAINERD_NETNS")
    cat >"$dir/ctr" <<SH
#!/bin/sh
exec nsenter --net=$PRIVATE_CONTAINERD_NETNS unshare -m --propagation private sh -c \
  'mount --bind ${PRIVATE_CONTAINERD_CNI_CONF:-/etc/cni/net.d} /etc/cni/net.d && mount --bind /usr/lib/cni /opt/cni/bin && exec ctr "\$@"' ctr "\$@"
SH
    chmod +x "$dir/ctr"
    ctr_cmd="$dir/ctr"
fi
QEMUBOX_CONFIG="$dir/qemubox.toml" "${enter[@]}" containerd --config "$dir/containerd.toml" >"$dir/containerd.log" 2>&1 &
cpid=$!
private_containerd_cleanup() {
    kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null
    # Spare VMs (warm_spares) this containerd's shims started: each ends its VM on SIGTERM.
    local spares
    spares=$(pgrep -f "spare-vm $dir/" || true)
    if [ -n "$spares" ]; then
        kill -TERM $spares 2>/dev/null
        for _ in $(seq 100); do kill -0 $spares 2>/dev/null || break; sleep 0.1; done
        kill -KILL $spares 2>/dev/null
    fi
    rm -rf "$dir"
}
trap private_containerd_cleanup EXIT
for _ in $(seq 100); do $ctr_cmd -a "$dir/c.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
python3 "$root/scripts/make-busybox-image.py" "$dir/image.tar" >/dev/null
$ctr_cmd -a "$dir/c.sock" -n bench image import "$dir/image.tar" >/dev/null
IMG=docker.io/library/qemubox-busybox:latest
C="$ctr_cmd -a $dir/c.sock -n bench"
