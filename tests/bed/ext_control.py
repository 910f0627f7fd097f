#!/usr/bin/env python3
"""Pushes a copy of an extension image whose control file says another
default_version, for the extension-update tests:

    ext_control.py REGISTRY REPO TAG SUFFIX EXTENSION DEFAULT_VERSION

REPO:TAG-SUFFIX is REPO:TAG with every layer uncompressed and
`<EXTENSION>.control`'s `default_version` set to DEFAULT_VERSION (its
config's diff_ids follow). With the version it already has, the copy is
the same extension under a new digest; with one no update script reaches,
it is an extension without an update path. Prints the new digest.
"""
import gzip
import hashlib
import io
import json
import re
import sys
import tarfile
import urllib.request

REG, REPO, TAG, SUFFIX, EXT, VERSION = sys.argv[1:7]
BASE = f"http://{REG}/v2/{REPO}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def get(url, accept="*/*"):
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req) as r:
        return r.read()


def put_blob(data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"{BASE}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(req) as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{REG}{location}"
    sep = "&" if "?" in location else "?"
    req = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req).close()
    return digest


manifest = json.loads(get(f"{BASE}/manifests/{TAG}", OCI_MANIFEST))
config = json.loads(get(f"{BASE}/blobs/{manifest['config']['digest']}"))
layers, diff_ids, changed = [], [], 0
for layer in manifest["layers"]:
    raw = get(f"{BASE}/blobs/{layer['digest']}")
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.isfile() and member.name.endswith(f"/{EXT}.control"):
                text = data.decode()
                text = re.sub(r"(?m)^default_version\s*=.*$", f"default_version = '{VERSION}'", text)
                data = text.encode()
                member.size = len(data)
                changed += 1
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    new = out.getvalue()
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                   "digest": put_blob(new), "size": len(new)})
    diff_ids.append("sha256:" + hashlib.sha256(new).hexdigest())
if changed == 0:
    sys.exit(f"no {EXT}.control in {REPO}:{TAG}")
config["rootfs"]["diff_ids"] = diff_ids
config_bytes = json.dumps(config, sort_keys=True).encode()
manifest["config"] = {"mediaType": manifest["config"]["mediaType"],
                      "digest": put_blob(config_bytes), "size": len(config_bytes)}
manifest["layers"] = layers
body = json.dumps(manifest, sort_keys=True).encode()
req = urllib.request.Request(f"{BASE}/manifests/{TAG}-{SUFFIX}", data=body, method="PUT",
                             headers={"Content-Type": OCI_MANIFEST})
urllib.request.urlopen(req).close()
print("sha256:" + hashlib.sha256(body).hexdigest())
