#!/usr/bin/env python3
"""Writes the pause image of qemubox's CRI tests (containerd's CRI `sandbox_image`) as an
OCI image layout tar for `ctr -n k8s.io image import` (no registry needed):

    scripts/make-pause-image.py OUT.tar [IMAGE_NAME]

Compiles Tests/Peers/pause/pause.c with `gcc -static` into /pause, the image's entrypoint.
IMAGE_NAME defaults to docker.io/library/qemubox-pause:latest. Same layout code as
scripts/make-busybox-image.py."""
import importlib.util, os, subprocess, sys, tarfile, tempfile

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_busybox_image", os.path.join(here, "make-busybox-image.py"))
image = importlib.util.module_from_spec(spec)
spec.loader.exec_module(image)

out = sys.argv[1]
name = sys.argv[2] if len(sys.argv) > 2 else "docker.io/library/qemubox-pause:latest"
source = os.path.join(here, "..", "Tests", "Peers", "pause", "pause.c")
with tempfile.TemporaryDirectory() as tmp:
    binary = os.path.join(tmp, "pause")
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", binary, source], check=True)
    subprocess.run(["strip", binary], check=True)
    with open(binary, "rb") as f:
        pause = f.read()


def pause_layer(tar):
    for d in ["dev", "etc", "proc", "sys"]:
        image.layer_entry(tar, d, tarfile.DIRTYPE)
    image.layer_entry(tar, "pause", tarfile.REGTYPE, pause)


image.write_image(out, name, pause_layer, {"Entrypoint": ["/pause"], "User": "65535:65535"})
print(name)
