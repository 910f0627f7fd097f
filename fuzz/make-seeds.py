#!/usr/bin/env python3
"""Writes the seed corpora the fuzz targets start from (committed under
corpus/): a minimal valid pgoci bundle tar (one server image of one tiny
layer, its lock and index.json, an extension with settings and env), the
lock it carries, and the repository's own profiles. Re-run after a format
change: `python3 fuzz/make-seeds.py`."""
import gzip, hashlib, io, json, os, shutil, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def tar_bytes(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image(files):
    layer = gzip.compress(tar_bytes(files), mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha(gzip.decompress(layer))]}},
                        separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(layer), "size": len(layer)}],
    }, separators=(",", ":")).encode()
    return manifest, config, layer


def pinned(indent, reference, manifest, config, layer):
    p = " " * indent
    return (f"{p}reference: {reference}\n{p}digest: {sha(manifest)}\n{p}size: {len(manifest)}\n"
            f"{p}media_type: application/vnd.oci.image.manifest.v1+json\n{p}config:\n"
            f"{p}  digest: {sha(config)}\n{p}  size: {len(config)}\n"
            f"{p}  media_type: application/vnd.oci.image.config.v1+json\n{p}layers:\n"
            f"{p}- digest: {sha(layer)}\n{p}  size: {len(layer)}\n"
            f"{p}  media_type: application/vnd.oci.image.layer.v1.tar+gzip\n")


server = image([("bin/postgres", b"\x7fELF"), ("share/postgresql.conf.sample", b"#\n")])
ext = image([("lib/x.so", b"\x7fELF"), ("share/extension/x.control", b"comment = 'x'\n")])
lock = ("# pgoci lock: generated, do not edit\nversion: 1\nplatform: linux/amd64\n"
        "profile:\n  name: seed\n  digest: " + sha(b"seed") + "\n"
        "request:\n  major: 17\n  extensions:\n  - x\n"
        "server:\n" + pinned(2, "127.0.0.1:5000/pg:17", *server) +
        '  version: "17.6"\n  layout: tree\n'
        "extensions:\n- name: x\n  version: \"1.0\"\n" + pinned(2, "127.0.0.1:5000/x:1.0-17", *ext) +
        "  preload: x\n  settings:\n    x.mode: fast\n  ld_library_path:\n  - system\n"
        "  env:\n    X_DATA: ${image_root}/share/x\n").encode()
index = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(m), "size": len(m),
         "annotations": {"org.opencontainers.image.ref.name": ref}}
        for m, ref in ((server[0], "127.0.0.1:5000/pg:17"), (ext[0], "127.0.0.1:5000/x:1.0-17"))],
    "annotations": {"io.pgoci.lock.digest": sha(lock)},
}, separators=(",", ":")).encode()
files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index), ("pgoci.lock", lock)]
for blob in (*server, *ext):
    files.append(("blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob))

for kind in ("lock", "profile", "bundle"):
    shutil.rmtree(os.path.join(CORPUS, kind), ignore_errors=True)
    os.makedirs(os.path.join(CORPUS, kind))


def put(kind, name, data):
    with open(os.path.join(CORPUS, kind, name), "wb") as f:
        f.write(data)


put("bundle", "minimal.tar", tar_bytes(files))
put("lock", "minimal.lock", lock)
with open(os.path.join(REPO, "tests/data/sample.lock"), "rb") as f:
    put("lock", "sample.lock", f.read())
for name in sorted(os.listdir(os.path.join(REPO, "profiles"))):
    with open(os.path.join(REPO, "profiles", name), "rb") as f:
        put("profile", name, f.read())
put("profile", "cnpg-catalog.yaml", b"""apiVersion: postgresql.cnpg.io/v1
kind: ClusterImageCatalog
metadata:
  name: postgresql-minimal-trixie
spec:
  images:
    - major: 17
      image: ghcr.io/cloudnative-pg/postgresql:17.6-minimal-trixie
      extensions:
        - name: pgvector
          image:
            reference: ghcr.io/cloudnative-pg/pgvector:0.8.0-17-trixie
    - major: 18
      image: ghcr.io/cloudnative-pg/postgresql:18.1-minimal-trixie
      extensions:
        - name: pgvector
          image:
            reference: ghcr.io/cloudnative-pg/pgvector:0.8.1-18-trixie
          ld_library_path: [system]
          env:
            - name: PROJ_DATA
              value: ${image_root}/share/proj
""")
