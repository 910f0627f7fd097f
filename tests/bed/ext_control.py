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
import os
import re
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ocireg import Repo  # noqa: E402

REG, REPO, TAG, SUFFIX, EXT, VERSION = sys.argv[1:7]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
repo = Repo(REG, REPO)
get = lambda path, accept="*/*": repo.get(path, accept)  # noqa: E731
put_blob = repo.put_blob

manifest = json.loads(get(f"manifests/{TAG}", OCI_MANIFEST))
config = json.loads(get(f"blobs/{manifest['config']['digest']}"))
layers, diff_ids, changed = [], [], 0
for layer in manifest["layers"]:
    raw = get(f"blobs/{layer['digest']}")
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
print(repo.put_manifest(f"{TAG}-{SUFFIX}", body, OCI_MANIFEST))
