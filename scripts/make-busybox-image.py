#!/usr/bin/env python3
"""Writes a one-layer OCI image layout tar whose rootfs is Debian's static busybox,
for `ctr image import` (no registry needed):

    scripts/make-busybox-image.py OUT.tar [IMAGE_NAME]

IMAGE_NAME defaults to docker.io/library/qemubox-busybox:latest. The layer is
reproducible (fixed mtimes, sorted entries). `layer_entry` and `write_image` are
also used by scripts/make-pause-image.py for other one-layer test images."""
import gzip, hashlib, io, json, os, subprocess, sys, tarfile

MTIME = 1700000000


def layer_entry(tar, path, kind, data=b"", mode=0o755, target=""):
    """Adds one entry (a regular file with `data`, or a directory or symlink) to a layer."""
    info = tarfile.TarInfo(path)
    info.mtime = MTIME
    info.mode = mode
    info.type = kind
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        info.linkname = target
        tar.addfile(info)


def write_image(out, name, fill_layer, image_config):
    """Writes an OCI image layout tar at `out` named `name`: one layer whose entries
    `fill_layer(tar)` adds, and `image_config` as the image config's "config"."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        fill_layer(tar)
    raw = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    compressed = gzip.compress(raw, mtime=0)

    def blob(data):
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }, sort_keys=True).encode()
    config_digest, _ = blob(config)
    layer_digest, _ = blob(compressed)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest,
                    "size": len(compressed)}],
    }, sort_keys=True).encode()
    manifest_digest, _ = blob(manifest)
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"},
                       "annotations": {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}],
    }, sort_keys=True).encode()

    with tarfile.open(out, "w") as tar:
        def put(path, data):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = MTIME
            tar.addfile(info, io.BytesIO(data))
        put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        put("index.json", index)
        for digest, data in [(config_digest, config), (layer_digest, compressed), (manifest_digest, manifest)]:
            put("blobs/sha256/" + digest.split(":")[1], data)


def busybox_layer(tar):
    busybox = "/bin/busybox"
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for d in ["bin", "dev", "etc", "home", "proc", "root", "run", "sys", "tmp", "var", "var/tmp"]:
        layer_entry(tar, d, tarfile.DIRTYPE, mode=0o1777 if d in ("tmp", "var/tmp") else 0o755)
    with open(busybox, "rb") as f:
        layer_entry(tar, "bin/busybox", tarfile.REGTYPE, f.read())
    for applet in sorted(set(applets)):
        if applet != "busybox":
            layer_entry(tar, "bin/" + applet, tarfile.SYMTYPE, target="busybox", mode=0o777)
    layer_entry(tar, "etc/passwd", tarfile.REGTYPE,
                b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home:/bin/sh\n", 0o644)
    layer_entry(tar, "etc/group", tarfile.REGTYPE, b"root:x:0:\nuser:x:1000:\n", 0o644)
    layer_entry(tar, "etc/hostname", tarfile.REGTYPE, b"qemubox\n", 0o644)


if __name__ == "__main__":
    out = sys.argv[1]
    name = sys.argv[2] if len(sys.argv) > 2 else "docker.io/library/qemubox-busybox:latest"
    write_image(out, name, busybox_layer,
                {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]})
    print(name)
