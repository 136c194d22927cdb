#!/usr/bin/env bash
# Installs (or uninstalls) the qemubox release this script ships in.
#
#   sudo ./install.sh                 beside the host's containerd: the shim on its PATH, so
#                                     `ctr run --runtime io.containerd.qemubox.v1 ...` works
#   sudo ./install.sh --dedicated     also a containerd of qemubox's own (qemubox-containerd.service,
#                                     socket /run/qemubox-containerd/containerd.sock)
#   sudo ./install.sh --uninstall     removes exactly what an install put there
#
# Options:
#   --prefix DIR     programs and data under DIR (default /usr/local); configuration is
#                    always /etc/qemubox
#   --destdir DIR    install into DIR as a root (packaging, tests); starts and enables nothing
#   --dedicated      install the dedicated containerd unit and its /etc/qemubox/containerd.toml
#   --uninstall      remove what the install manifest lists; edited configuration is kept
#   --purge          with --uninstall: remove edited configuration too
#   --no-start       install or remove units, but do not enable, start or stop them
#   --list           print the paths an install would write, and exit
#
# Idempotent: a second run changes nothing that is already current. A configuration file
# (/etc/qemubox/*.toml) is written only while it is absent or as this script last wrote it:
# an edited one is kept, and the shipped version stays readable in <prefix>/share/qemubox/.
# What was written is recorded in <prefix>/share/qemubox/install-manifest.
set -euo pipefail
umask 022
here="$(cd "$(dirname "$0")" && pwd)"

prefix=/usr/local
destdir=""
mode=install
dedicated=0
purge=0
start=1

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "install.sh: $*" >&2; exit 1; }
arg() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) arg "$@"; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#*=}"; shift ;;
        --destdir) arg "$@"; destdir="$2"; shift 2 ;;
        --destdir=*) destdir="${1#*=}"; shift ;;
        --dedicated) dedicated=1; shift ;;
        --uninstall) mode=uninstall; shift ;;
        --purge) purge=1; shift ;;
        --no-start) start=0; shift ;;
        --list) mode=list; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$prefix" in /*) ;; *) die "--prefix must be an absolute path, not $prefix" ;; esac
prefix="${prefix%/}"
[ -n "$prefix" ] || die "--prefix / is not supported; use /usr"
if [ -n "$destdir" ]; then
    mkdir -p "$destdir"
    destdir="$(cd "$destdir" && pwd)"
    [ "$destdir" != / ] || destdir=""
fi
[ "$purge" = 0 ] || [ "$mode" = uninstall ] || die "--purge goes with --uninstall"
# Units go where systemd looks for them: <prefix>/lib/systemd/system for /usr and
# /usr/local, else /etc/systemd/system.
case "$prefix" in
    /usr|/usr/local) unitdir="$prefix/lib/systemd/system" ;;
    *) unitdir=/etc/systemd/system ;;
esac
share="$prefix/share/qemubox"
manifest_path="$share/install-manifest"
manifest="$destdir$manifest_path"
# systemctl only for a live install on a host that runs systemd.
live=0
if [ -z "$destdir" ] && [ "$start" = 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    live=1
fi

# The plan: one line per path, "KIND MODE SOURCE TARGET". KIND is file (replaced on every
# install), config (kept once edited) or unit (a file, rendered for the prefix).
plan() {
    local f
    for f in containerd-shim-qemubox-v1 qemubox; do
        echo "file 0755 bin/$f $prefix/bin/$f"
    done
    for f in "$here"/share/qemubox/*; do
        [ -f "$f" ] && echo "file 0644 share/qemubox/${f##*/} $share/${f##*/}"
    done
    for f in "$here"/share/doc/qemubox/*; do
        [ -f "$f" ] && echo "file 0644 share/doc/qemubox/${f##*/} $prefix/share/doc/qemubox/${f##*/}"
    done
    echo "config 0644 share/qemubox/config.toml /etc/qemubox/config.toml"
    echo "unit 0644 share/qemubox/systemd/qemubox-prune.service $unitdir/qemubox-prune.service"
    echo "unit 0644 share/qemubox/systemd/qemubox-prune.timer $unitdir/qemubox-prune.timer"
    echo "unit 0644 share/qemubox/systemd/qemubox-metrics.service $unitdir/qemubox-metrics.service"
    if [ "$dedicated" = 1 ]; then
        echo "config 0644 share/qemubox/containerd.toml /etc/qemubox/containerd.toml"
        echo "unit 0644 share/qemubox/systemd/qemubox-containerd.service $unitdir/qemubox-containerd.service"
    fi
}

if [ "$mode" = list ]; then
    plan | awk '{print $4}'
    exit 0
fi
[ -n "$destdir" ] || [ "$(id -u)" = 0 ] || die "must run as root (or with --destdir)"

hash_of() { sha256sum "$1" | cut -d' ' -f1; }
# The manifest's entry for TARGET: "KIND HASH" (empty when it has none).
recorded() { [ -f "$manifest" ] && awk -v t="$2" '$1 == "'"$1"'" && $3 == t {print $2; exit}' "$manifest" || true; }

units_in_manifest() { [ -f "$manifest" ] && awk '$1 == "unit" {n = split($3, p, "/"); print p[n]}' "$manifest" || true; }
systemd_stop() { # systemd_stop UNIT...: disable and stop, for a live uninstall
    [ "$live" = 1 ] && [ $# -gt 0 ] || return 0
    systemctl disable --now "$@" >/dev/null 2>&1 || true
}

uninstall() {
    [ -f "$manifest" ] || die "nothing to uninstall under ${destdir}$prefix: no $manifest"
    mapfile -t units < <(units_in_manifest)
    systemd_stop "${units[@]}"
    local kind hash target kept=""
    local -a dirs=()
    while read -r kind hash target; do
        case "$kind" in
            file|unit) rm -f "$destdir$target"; echo "removed $target" ;;
            config)
                if [ ! -e "$destdir$target" ]; then :
                elif [ "$purge" = 1 ] || [ "$(hash_of "$destdir$target")" = "$hash" ]; then
                    rm -f "$destdir$target"; echo "removed $target"
                else
                    echo "kept $target: edited since it was installed (--uninstall --purge removes it)"
                    kept+="config $hash $target"$'\n'
                fi ;;
            dir) dirs+=("$hash") ;; # a dir line is "dir PATH"
        esac
    done <"$manifest"
    if [ -n "$kept" ]; then
        # Like dpkg's removed-but-not-purged state: the manifest lists what is left.
        { printf 'dir %s\n' "${dirs[@]}"; printf '%s' "$kept"; } >"$manifest"
    else
        rm -f "$manifest"
    fi
    local i
    for ((i = ${#dirs[@]} - 1; i >= 0; i--)); do
        rmdir "$destdir${dirs[i]}" 2>/dev/null || true
    done
    [ "$live" = 0 ] || systemctl daemon-reload
    local data
    for data in /var/cache/qemubox /var/lib/qemubox /var/lib/qemubox-containerd; do
        [ -e "$destdir$data" ] && echo "left $data: data the runtime made, not the install (remove it by hand if unwanted)"
    done
    echo "qemubox uninstalled from ${destdir}$prefix${kept:+ (edited configuration kept)}"
}

new_manifest=""
record() { new_manifest+="$*"$'\n'; }

# make_dirs DIR: creates DIR's missing components, recording each one made.
make_dirs() {
    local dir="$1" path="" part
    local IFS=/
    for part in $dir; do
        [ -n "$part" ] || continue
        path="$path/$part"
        if [ ! -d "$destdir$path" ]; then
            mkdir "$destdir$path"
            record "dir $path"
        fi
    done
}

# put SOURCE TARGET MODE: writes TARGET (beside it, then renamed) unless it is already SOURCE.
put() {
    local src="$1" target="$2" mode="$3" dst="$destdir$2"
    if [ -f "$dst" ] && [ "$(hash_of "$dst")" = "$(hash_of "$src")" ] && [ ! -L "$dst" ]; then
        chmod "$mode" "$dst"
        return 1
    fi
    install -m "$mode" "$src" "$dst.qemubox-new"
    mv -f "$dst.qemubox-new" "$dst"
    echo "installed $target"
}

install_all() {
    [ -x "$here/bin/containerd-shim-qemubox-v1" ] || die "no bin/containerd-shim-qemubox-v1 beside install.sh: run it from the unpacked release"
    if [ "$dedicated" = 0 ] && [ -n "$(recorded unit "$unitdir/qemubox-containerd.service")" ]; then
        echo "keeping the dedicated containerd installed before (--uninstall first to drop it)"
        dedicated=1
    fi
    rendered=""
    rendered="$(mktemp -d)"
    trap '[ -z "$rendered" ] || rm -rf "$rendered"' EXIT
    # Directories recorded by an earlier install stay ours while they exist.
    if [ -f "$manifest" ]; then
        local d
        while read -r d; do [ -d "$destdir$d" ] && record "dir $d"; done < <(awk '$1 == "dir" {print $2}' "$manifest")
    fi
    local kind mode src target changed=0 path
    while read -r kind mode src target; do
        make_dirs "$(dirname "$target")"
        path="$here/$src"
        if [ "$kind" = unit ]; then
            path="$rendered/${src##*/}"
            sed "s|@PREFIX@|$prefix|g" "$here/$src" >"$path"
        fi
        local new
        new="$(hash_of "$path")"
        if [ "$kind" = config ] && [ -e "$destdir$target" ]; then
            local current previous
            current="$(hash_of "$destdir$target")"
            previous="$(recorded config "$target")"
            if [ "$current" = "$new" ]; then
                record "config $new $target"
            elif [ -n "$previous" ] && [ "$current" = "$previous" ]; then
                put "$path" "$target" "$mode" || true
                record "config $new $target"; changed=1
            else
                if [ -n "$previous" ]; then
                    echo "kept $target: edited since it was installed; the shipped version is $share/${src##*/}"
                    record "config $previous $target"
                else
                    echo "kept $target: not written by this installer; the shipped version is $share/${src##*/}"
                fi
            fi
            continue
        fi
        if put "$path" "$target" "$mode"; then changed=1; fi
        record "$kind $new $target"
    done < <(plan)

    # Files an earlier install wrote that this release no longer ships.
    if [ -f "$manifest" ]; then
        local old
        while read -r kind old target; do
            [ "$kind" = dir ] && continue
            awk -v t="$target" '$NF == t {f = 1} END {exit !f}' <<<"$new_manifest" && continue
            if [ "$kind" = config ] && [ -e "$destdir$target" ] && [ "$(hash_of "$destdir$target")" != "$old" ]; then
                echo "kept $target: edited; no longer shipped"
                continue
            fi
            rm -f "$destdir$target"; echo "removed $target (no longer shipped)"; changed=1
        done <"$manifest"
    fi
    # Directories first in the manifest (creation order: parents before children).
    { grep '^dir ' <<<"$new_manifest" | awk '!seen[$0]++'; grep -v '^dir ' <<<"$new_manifest" | grep . ; } >"$manifest.new"
    mv -f "$manifest.new" "$manifest"

    if [ "$live" = 1 ]; then
        systemctl daemon-reload
        systemctl enable --now qemubox-prune.timer >/dev/null
        if [ "$dedicated" = 1 ]; then
            systemctl enable qemubox-containerd.service >/dev/null
            systemctl restart qemubox-containerd.service
        fi
    fi
    [ "$changed" = 1 ] || echo "qemubox is already installed and current under ${destdir}$prefix"
    check_host
}

check_host() {
    [ -z "$destdir" ] || return 0
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    command -v containerd >/dev/null || missing+=(containerd)
    [ "${#missing[@]}" = 0 ] || echo "warning: not on this host: ${missing[*]} (apt-get install ${missing[*]})" >&2
    case ":$PATH:" in *":$prefix/bin:"*) ;; *)
        echo "note: $prefix/bin is not on PATH; containerd finds the shim only on its PATH (--dedicated sets it)" >&2 ;;
    esac
    echo "done: \`$prefix/bin/qemubox check\` reports what this host can run"
    if [ "$dedicated" = 1 ]; then
        echo "      ctr --address /run/qemubox-containerd/containerd.sock run --runtime io.containerd.qemubox.v1 IMAGE ID CMD"
    else
        echo "      ctr run --runtime io.containerd.qemubox.v1 IMAGE ID CMD; for CRI see $share/containerd-cri-runtime.toml"
    fi
}

case "$mode" in
    install) install_all ;;
    uninstall) uninstall ;;
esac
