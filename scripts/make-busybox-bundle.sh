#!/usr/bin/env bash
# Makes a small OCI bundle whose rootfs is Debian's static busybox:
#   scripts/make-busybox-bundle.sh DIR [ARG...]
# DIR/config.json comes from `crun spec` (the runtime's own default spec),
# with process.args = ARG... (default: sh), no terminal and a writable rootfs.
set -euo pipefail
dir="$1"; shift
busybox=/bin/busybox
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
    echo "make-busybox-bundle: need a static $busybox (apt-get install busybox-static)" >&2
    exit 1
fi
rm -rf "$dir"
mkdir -p "$dir/rootfs"/{bin,etc,proc,sys,dev,tmp,root,run,var/tmp,home}
cp "$busybox" "$dir/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ -e "$dir/rootfs/bin/$applet" ] || ln -s busybox "$dir/rootfs/bin/$applet"
done
chmod 1777 "$dir/rootfs/tmp" "$dir/rootfs/var/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/rootfs/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n' > "$dir/rootfs/etc/group"
echo "qemubox" > "$dir/rootfs/etc/hostname"
(cd "$dir" && crun spec)
python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:] or ["sh"]
spec = json.load(open(path))
spec["process"]["args"] = args
spec["process"]["terminal"] = False
spec["root"]["readonly"] = False
spec["hostname"] = "qemubox"
json.dump(spec, open(path, "w"), indent=2)
PY
echo "bundle: $dir ($(du -sh "$dir/rootfs" | cut -f1) rootfs)"
