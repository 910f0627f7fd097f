#!/usr/bin/env python3
"""Pushes the image variants registries serve into a test registry, made
from the hstore-17 fixture already there, with skopeo and plain HTTP:

    variants.py REGISTRY REPO TAG

  REPO:TAG-docker   Docker v2 schema 2 media types (skopeo --format v2s2)
  REPO:TAG-zstd     OCI, layers recompressed with zstd
  REPO:TAG-plain    OCI, uncompressed tar layers
  REPO:TAG-multi    an OCI image index: linux/amd64 (the original),
                    linux/arm64 (same layer, an arm64 config) and an
                    unknown/unknown attestation entry

Idempotent: pushing the same bytes again changes nothing.
"""
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

REG, REPO, TAG = sys.argv[1:4]
BASE = f"http://{REG}/v2/{REPO}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def skopeo(dest_tag, *flags):
    """Copies REPO:TAG to REPO:dest_tag with `flags`. A registry-to-registry
    copy would reuse the gzip blob already there, so recompression goes
    through an OCI layout in a temp dir, with the same flags both ways."""
    base = ["skopeo", "--insecure-policy", "copy", "--quiet"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([*base, "--src-tls-verify=false", *flags,
                        f"docker://{REG}/{REPO}:{TAG}", f"oci:{tmp}:x"], check=True)
        subprocess.run([*base, "--dest-tls-verify=false", *flags,
                        f"oci:{tmp}:x", f"docker://{REG}/{REPO}:{dest_tag}"], check=True)


def get(url, accept):
    req = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(req) as r:
        return r.read()


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ocireg import Repo  # noqa: E402

_repo = Repo(REG, REPO)
put_blob = _repo.put_blob
put_manifest = _repo.put_manifest


subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                "--dest-tls-verify=false", "--format", "v2s2",
                f"docker://{REG}/{REPO}:{TAG}", f"docker://{REG}/{REPO}:{TAG}-docker"], check=True)
skopeo(f"{TAG}-zstd", "--dest-compress", "--dest-compress-format", "zstd")

amd_bytes = get(f"{BASE}/manifests/{TAG}", OCI_MANIFEST)
amd = json.loads(amd_bytes)
amd_digest = "sha256:" + hashlib.sha256(amd_bytes).hexdigest()
config = json.loads(get(f"{BASE}/blobs/{amd['config']['digest']}", "*/*"))
config["architecture"] = "arm64"
arm_config = json.dumps(config, sort_keys=True).encode()
arm = dict(amd)
arm["config"] = {"mediaType": amd["config"]["mediaType"], "digest": put_blob(arm_config),
                 "size": len(arm_config)}
arm_bytes = json.dumps(arm, sort_keys=True).encode()
arm_digest = put_manifest(hashlib.sha256(arm_bytes).hexdigest()[:16], arm_bytes, OCI_MANIFEST)
att_config = b"{}"
att_layer = b'{"_type":"https://in-toto.io/Statement/v0.1"}'
att = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                  "digest": put_blob(att_config), "size": len(att_config)},
       "layers": [{"mediaType": "application/vnd.in-toto+json",
                   "digest": put_blob(att_layer), "size": len(att_layer)}]}
att_bytes = json.dumps(att, sort_keys=True).encode()
att_digest = put_manifest("attestation", att_bytes, OCI_MANIFEST)
index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
    {"mediaType": OCI_MANIFEST, "digest": arm_digest, "size": len(arm_bytes),
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    {"mediaType": OCI_MANIFEST, "digest": att_digest, "size": len(att_bytes),
     "platform": {"os": "unknown", "architecture": "unknown"}},
    {"mediaType": OCI_MANIFEST, "digest": amd_digest, "size": len(amd_bytes),
     "platform": {"os": "linux", "architecture": "amd64"}},
]}
# Uncompressed layers: skopeo recompresses whatever goes to a registry, so
# this one is assembled by hand from the gunzipped layer.
plain = dict(amd)
plain["layers"] = []
for layer in amd["layers"]:
    raw = gzip.decompress(get(f"{BASE}/blobs/{layer['digest']}", "*/*"))
    plain["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": put_blob(raw), "size": len(raw)})
put_manifest(f"{TAG}-plain", json.dumps(plain, sort_keys=True).encode(), OCI_MANIFEST)

put_manifest(f"{TAG}-multi", json.dumps(index, sort_keys=True).encode(), OCI_INDEX)
print(json.dumps({"amd64": amd_digest, "arm64": arm_digest}))
