#!/usr/bin/env bash
# Builds qemubox's guest kernel (an uncompressed, PVH-bootable `vmlinux`) from
# Debian's linux-source-6.1: `make tinyconfig`, plus kernel-config/qemubox.config
# merged with scripts/kconfig/merge_config.sh, then `make olddefconfig`.
#
# Every option the fragment asks for is verified after olddefconfig: a
# `CONFIG_X=value` line that Kconfig dropped (an unmet dependency) or a
# `# CONFIG_X is not set` line that came back fails the build, listing them all.
#
# The result is cached outside the clone, keyed by the sha256 of (fragment +
# this script + kernel source package version):
#     $QEMUBOX_KERNEL_CACHE/<key>/vmlinux   (default /var/cache/qemubox/kernel)
#     $QEMUBOX_KERNEL_CACHE/current -> <key>
# A cached result is reused at once. The build runs in a temporary directory
# and is moved into place with a rename, so an interrupted run leaves nothing
# half-written; concurrent runs serialise on a lock file.
#
# Usage: kernel-config/build.sh [--check-config] [--print-key] [--source-dir DIR]
#   (no option)       build if needed; print the vmlinux path on stdout
#   --check-config    only configure and verify the options (no compile)
#   --print-key       print the cache key and exit
#   --source-dir DIR  use an already extracted, clean linux source tree
#                     instead of extracting the tarball (configuration only
#                     writes to a separate output directory)
# Environment: QEMUBOX_KERNEL_CACHE, QEMUBOX_KERNEL_SOURCE (tarball, default
# /usr/src/linux-source-6.1.tar.xz), QEMUBOX_KERNEL_JOBS (default nproc),
# QEMUBOX_KERNEL_NICE (default 10), TMPDIR (default /var/tmp).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
script="$here/$(basename "$0")"
fragment="$here/qemubox.config"
tarball="${QEMUBOX_KERNEL_SOURCE:-/usr/src/linux-source-6.1.tar.xz}"
cache="${QEMUBOX_KERNEL_CACHE:-/var/cache/qemubox/kernel}"
jobs="${QEMUBOX_KERNEL_JOBS:-$(nproc)}"
niceness="${QEMUBOX_KERNEL_NICE:-10}"

mode=build
source_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --check-config) mode=check ;;
        --print-key) mode=key ;;
        --source-dir) source_dir="${2:?--source-dir needs a directory}"; shift ;;
        -h|--help) sed -n '2,29p' "$script" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-kernel: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "build-kernel: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The kernel source's version: Debian's package version when the tarball is the
# packaged one, else the tarball's own hash.
source_version() {
    local v
    if [ "$tarball" = /usr/src/linux-source-6.1.tar.xz ] &&
        v="$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null)" && [ -n "$v" ]; then
        echo "linux-source-6.1 $v"
    else
        [ -f "$tarball" ] || die "kernel source $tarball not found (apt-get install linux-source-6.1)"
        echo "tarball $(sha256sum < "$tarball" | cut -d' ' -f1)"
    fi
}

cache_key() {
    { sha256sum < "$fragment"; sha256sum < "$script"; source_version; } | sha256sum | cut -d' ' -f1
}

# Lists every fragment line that did not survive into the final .config.
verify_config() {
    local config="$1" line name bad=()
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            CONFIG_*=*)
                if ! grep -qxF -- "$line" "$config"; then
                    name="${line%%=*}"
                    bad+=("$line (got: $(grep -E "^(# )?$name[= ]" "$config" || echo absent))")
                fi ;;
            "# CONFIG_"*" is not set")
                name="${line#\# }"; name="${name%% *}"
                if grep -qE "^$name=" "$config"; then
                    bad+=("$line (got: $(grep -E "^$name=" "$config"))")
                fi ;;
        esac
    done < "$fragment"
    if [ "${#bad[@]}" -gt 0 ]; then
        say "error: ${#bad[@]} option(s) of $fragment did not survive olddefconfig (missing dependency?):"
        printf '  %s\n' "${bad[@]}" >&2
        return 1
    fi
    say "verified all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$fragment") options of the fragment"
}

[ -f "$fragment" ] || die "missing $fragment"
key="$(cache_key)"
if [ "$mode" = key ]; then echo "$key"; exit 0; fi

link_current() {
    local tmp="$cache/.current.$$"
    ln -sfn "$key" "$tmp" && mv -T "$tmp" "$cache/current" 2>/dev/null || rm -f "$tmp"
}

if [ "$mode" = build ] && [ -f "$cache/$key/vmlinux" ]; then
    link_current || true
    echo "$cache/$key/vmlinux"
    exit 0
fi

for tool in make gcc flex bison bc tar xz; do
    command -v "$tool" >/dev/null ||
        die "$tool not found (apt-get install linux-source-6.1 flex bison bc libelf-dev build-essential)"
done

if [ "$mode" = build ]; then
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9
    # Another run may have finished while we waited for the lock.
    if [ -f "$cache/$key/vmlinux" ]; then
        link_current || true
        echo "$cache/$key/vmlinux"
        exit 0
    fi
fi

work="$(mktemp -d "${TMPDIR:-/var/tmp}/qemubox-kernel.XXXXXX")"
stage=""
cleanup() {
    rm -rf "$work"
    if [ -n "$stage" ]; then rm -rf "$stage"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ -n "$source_dir" ]; then
    src="$(cd "$source_dir" && pwd)"
else
    [ -f "$tarball" ] || die "kernel source $tarball not found (apt-get install linux-source-6.1)"
    say "extracting $tarball"
    tar -xJf "$tarball" -C "$work"
    src="$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
fi
[ -f "$src/scripts/kconfig/merge_config.sh" ] || die "$src is not a linux source tree"
out="$work/out"
mkdir -p "$out"
log="$work/build.log"
kmake() { nice -n "$niceness" make -C "$src" O="$out" ARCH=x86_64 "$@" >>"$log" 2>&1; }
fail() {
    tail -n 40 "$log" >&2 || true
    die "$1 (last lines of the log above)"
}

say "configuring: tinyconfig + $(basename "$fragment")"
kmake tinyconfig || fail "make tinyconfig failed"
(cd "$out" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$fragment") >>"$log" 2>&1 ||
    fail "merge_config.sh failed"
kmake olddefconfig || fail "make olddefconfig failed"
verify_config "$out/.config"

if [ "$mode" = check ]; then
    say "configuration ok ($(grep -c '=y$' "$out/.config") options =y); not compiling (--check-config)"
    exit 0
fi

say "compiling vmlinux with $jobs job(s) (nice $niceness); this takes 5-30 minutes"
start=$(date +%s)
kmake -j"$jobs" vmlinux || fail "kernel build failed"
vmlinux="$out/vmlinux"
[ -f "$vmlinux" ] || fail "no vmlinux produced"
# PVH boot needs the XEN_ELFNOTE_PHYS32_ENTRY note (owner "Xen", type 18).
if command -v readelf >/dev/null && ! readelf -n "$vmlinux" | grep -q '^  Xen'; then
    die "vmlinux has no Xen PVH entry note: QEMU cannot boot it with -kernel"
fi

stage="$(mktemp -d "$cache/.stage.XXXXXX")"
cp "$vmlinux" "$stage/vmlinux"
cp "$out/.config" "$stage/config"
cp "$fragment" "$stage/fragment.config"
{
    echo "key: $key"
    echo "source: $(source_version)"
    echo "kernel: $(cat "$out/include/config/kernel.release")"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - start )) s with $jobs job(s)"
    echo "vmlinux bytes: $(stat -c %s "$vmlinux")"
} > "$stage/build-info"
chmod 755 "$stage"
mv -T "$stage" "$cache/$key"
stage=""
link_current || true
say "built $cache/$key/vmlinux ($(stat -c %s "$cache/$key/vmlinux") bytes)"
echo "$cache/$key/vmlinux"
