"""Plain-HTTP OCI distribution calls the bed's Python helpers share:
fetch a manifest or blob, upload a blob (monolithic), put a manifest."""
import hashlib
import urllib.request


class Repo:
    """One repository of a plain-HTTP registry."""

    def __init__(self, registry, repo):
        self.registry = registry
        self.base = f"http://{registry}/v2/{repo}"

    def get(self, path, accept="*/*"):
        req = urllib.request.Request(f"{self.base}/{path}", headers={"Accept": accept})
        with urllib.request.urlopen(req) as r:
            return r.read()

    def put_blob(self, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        req = urllib.request.Request(f"{self.base}/blobs/uploads/", method="POST")
        with urllib.request.urlopen(req) as r:
            location = r.headers["Location"]
        if location.startswith("/"):
            location = f"http://{self.registry}{location}"
        sep = "&" if "?" in location else "?"
        req = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(req).close()
        return digest

    def put_manifest(self, ref, data, media_type):
        req = urllib.request.Request(f"{self.base}/manifests/{ref}", data=data, method="PUT",
                                     headers={"Content-Type": media_type})
        urllib.request.urlopen(req).close()
        return "sha256:" + hashlib.sha256(data).hexdigest()
