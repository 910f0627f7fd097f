#!/usr/bin/env python3
"""Pushes REPO:TAG-syslib: the image REPO:TAG plus a second layer holding
system/libpgocitest.so.1 (a library no host has) and a symlink to it,
like CloudNativePG extension images that carry their system libraries.

    syslib.py REGISTRY REPO TAG
"""
import hashlib
import io
import json
import sys
import tarfile
import urllib.request

REG, REPO, TAG = sys.argv[1:4]
BASE = f"http://{REG}/v2/{REPO}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def get(url, accept="*/*"):
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept})) as r:
        return r.read()


def put_blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with urllib.request.urlopen(urllib.request.Request(f"{BASE}/blobs/uploads/", method="POST")) as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{REG}{location}"
    sep = "&" if "?" in location else "?"
    urllib.request.urlopen(urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT",
                                                  headers={"Content-Type": "application/octet-stream"})).close()
    return digest


manifest = json.loads(get(f"{BASE}/manifests/{TAG}", OCI_MANIFEST))
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
    def add(name, data=None, link=None, mode=0o644):
        info = tarfile.TarInfo(name)
        info.mtime = 0
        info.mode = mode
        if link:
            info.type = tarfile.SYMTYPE
            info.linkname = link
            tar.addfile(info)
        elif data is None:
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    add("system")
    add("system/libpgocitest.so.1", b"\x7fELF not really a library, for pgoci tests\n")
    add("system/libpgocitest.so", link="libpgocitest.so.1")
layer = buf.getvalue()
manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                           "digest": put_blob(layer), "size": len(layer)})
body = json.dumps(manifest, sort_keys=True).encode()
urllib.request.urlopen(urllib.request.Request(f"{BASE}/manifests/{TAG}-syslib", data=body, method="PUT",
                                              headers={"Content-Type": OCI_MANIFEST})).close()
print("sha256:" + hashlib.sha256(body).hexdigest())
