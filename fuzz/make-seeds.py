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


def tiny_elf(is_64=True, little=True):
    """A small shared object with everything the ELF reader looks at:
    PT_LOAD, PT_INTERP, PT_DYNAMIC, DT_NEEDED/SONAME/RUNPATH/RPATH and one
    version need and definition, addresses equal to file offsets."""
    import struct
    e = "<" if little else ">"
    W = "Q" if is_64 else "I"
    ehsize, phsize, dsize = (64, 56, 16) if is_64 else (52, 32, 8)
    interp = b"/lib64/ld-linux-x86-64.so.2\0"
    names = [b"", b"libc.so.6", b"libseed.so.1", b"$ORIGIN/../lib:/opt/x", b"/old/rpath",
             b"GLIBC_2.34", b"SEED_1.0"]
    strtab, off = b"", {}
    for n in names:
        off[n] = len(strtab)
        strtab += n + b"\0"
    at = ehsize + 3 * phsize
    interp_at = at
    at += len(interp)
    at = (at + 7) & ~7
    str_at = at
    at = (at + len(strtab) + 7) & ~7
    vn_at = at
    verneed = struct.pack(e + "HHIII", 1, 1, off[b"libc.so.6"], 16, 0)
    verneed += struct.pack(e + "IHHII", 0x06969194, 0, 2, off[b"GLIBC_2.34"], 0)
    at += len(verneed)
    vd_at = at
    verdef = struct.pack(e + "HHHHIII", 1, 1, 1, 1, 0, 20, 28)  # base: the file itself
    verdef += struct.pack(e + "II", off[b"libseed.so.1"], 0)
    verdef += struct.pack(e + "HHHHIII", 1, 0, 2, 1, 0, 20, 0)
    verdef += struct.pack(e + "II", off[b"SEED_1.0"], 0)
    at += len(verdef)
    dyn_at = at
    tags = [(1, off[b"libc.so.6"]), (14, off[b"libseed.so.1"]), (29, off[b"$ORIGIN/../lib:/opt/x"]),
            (15, off[b"/old/rpath"]), (5, str_at), (10, len(strtab)), (0x6ffffffe, vn_at),
            (0x6fffffff, 1), (0x6ffffffc, vd_at), (0x6ffffffd, 2), (0, 0)]
    dynamic = b"".join(struct.pack(e + W + W, t, v) for t, v in tags)
    size = dyn_at + len(dynamic)
    machine = 62 if is_64 else 3
    ident = b"\x7fELF" + bytes([2 if is_64 else 1, 1 if little else 2, 1]) + bytes(9)
    if is_64:
        eh = ident + struct.pack(e + "HHIQQQIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, 3, 64, 0, 0)
        ph = lambda t, o, s: struct.pack(e + "IIQQQQQQ", t, 4, o, o, o, s, s, 8)
    else:
        eh = ident + struct.pack(e + "HHIIIIIHHHHHH", 3, machine, 1, 0, ehsize, 0, 0, ehsize, phsize, 3, 40, 0, 0)
        ph = lambda t, o, s: struct.pack(e + "IIIIIIII", t, o, o, o, s, s, 4, 4)
    out = bytearray(size)
    out[:ehsize] = eh
    out[ehsize:ehsize + 3 * phsize] = ph(1, 0, size) + ph(3, interp_at, len(interp)) + ph(2, dyn_at, len(dynamic))
    out[interp_at:interp_at + len(interp)] = interp
    out[str_at:str_at + len(strtab)] = strtab
    out[vn_at:vn_at + len(verneed)] = verneed
    out[vd_at:vd_at + len(verdef)] = verdef
    out[dyn_at:dyn_at + len(dynamic)] = dynamic
    return bytes(out)


def tiny_ld_cache():
    """A glibc-ld.so.cache1.1 with two x86-64 entries, and the same behind
    an old-format table."""
    import struct
    strings = b"libseed.so.1\0/usr/lib/libseed.so.1\0libc.so.6\0/lib/x86_64-linux-gnu/libc.so.6\0"
    header = 48
    base = header + 2 * 24
    entries = b""
    at = [0]
    for part in strings.split(b"\0")[:-1]:
        at.append(at[-1] + len(part) + 1)
    for key, value in ((at[0], at[1]), (at[2], at[3])):
        entries += struct.pack("<iIIIQ", 0x0303, base + key, base + value, 0, 0)
    new = b"glibc-ld.so.cache1.1" + struct.pack("<IIII", 2, len(strings), 0, 0) + bytes(12) + entries + strings
    old = b"ld.so-1.7.0\0" + struct.pack("<I", 1) + bytes(12)
    old += bytes(-len(old) % 8)
    return new, old + new


shutil.rmtree(os.path.join(CORPUS, "elf"), ignore_errors=True)
os.makedirs(os.path.join(CORPUS, "elf"))
for is_64, little, name in ((True, True, "tiny64le.so"), (False, False, "tiny32be.so")):
    put("elf", name, tiny_elf(is_64, little))
new, old = tiny_ld_cache()
put("elf", "ld.so.cache", new)
put("elf", "ld.so.cache-old", old)
# A few small real objects of this machine (a library with version
# definitions, one with needs only, an executable), whole and cut.
real = [p for p in ("/usr/lib/x86_64-linux-gnu/librt.so.1", "/usr/lib/x86_64-linux-gnu/libcom_err.so.2.1",
                    "/usr/lib/x86_64-linux-gnu/libpamc.so.0.82.1", "/usr/bin/true") if os.path.isfile(p)]
for p in real:
    with open(p, "rb") as f:
        data = f.read()
    put("elf", os.path.basename(p), data)
    put("elf", os.path.basename(p) + ".cut", data[:len(data) // 3])
