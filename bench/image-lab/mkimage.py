#!/usr/bin/env python3
"""Writes an OCI image layout whose layers are gzip'd tars of pseudo-random bytes from fixed seeds: the same digests
on every run, and nothing to compress (so the bytes on the wire are the layer sizes).
usage: mkimage.py LAYOUT_DIR SIZE[,SIZE...]   (sizes in bytes)   prints the manifest digest"""
import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

layout, sizes = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
os.makedirs(f"{layout}/blobs/sha256", exist_ok=True)


def put(data):
    digest = hashlib.sha256(data).hexdigest()
    with open(f"{layout}/blobs/sha256/{digest}", "wb") as f:
        f.write(data)
    return "sha256:" + digest


layers, diff_ids = [], []
for i, size in enumerate(sizes):
    payload = random.Random(1000 + i).randbytes(size)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo(f"data/layer{i}.bin")
        info.size, info.mtime = size, 0
        t.addfile(info, io.BytesIO(payload))
    raw = tar.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    gz = gzip.compress(raw, compresslevel=1, mtime=0)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}}).encode()
manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
    "layers": layers}).encode()
digest = put(manifest)
with open(f"{layout}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
               "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, f)
with open(f"{layout}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
print(digest)
