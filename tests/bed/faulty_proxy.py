#!/usr/bin/env python3
"""A loopback HTTP proxy in front of the test registry that misbehaves on
purpose, for faults a real registry will not produce on demand.

    faulty_proxy.py UPSTREAM_HOST:PORT LOG_FILE MODE [ARG]

MODE (applies to blob GETs, /v2/<name>/blobs/<digest>; everything else is
passed through untouched):
    cut N       a GET from the start (no Range, or `bytes=0-`) gets the right
                headers but only N body bytes, then the connection drops
                (once per blob)
    status C K  the first K blob GETs are answered with status C
    always C    every blob GET is answered with status C
    corrupt     one byte in the middle of every blob body is flipped
    slow MS     every manifest and blob GET is answered MS milliseconds late
                (the registry sees the request at once): a slow link, to
                stretch a pull over a token's lifetime

Prints "PORT=<port>" on stdout once listening; logs one line per request
("GET <path> range=<Range or ->  -> <what happened>") to LOG_FILE.
"""
import http.client
import http.server
import sys
import threading
import time

UPSTREAM, LOG, MODE = sys.argv[1], sys.argv[2], sys.argv[3:]
lock = threading.Lock()
state = {"failed": 0, "cut": set()}


def log(line):
    with lock, open(LOG, "a") as f:
        f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def relay(self, method):
        is_blob = method == "GET" and "/blobs/sha256:" in self.path
        rng = self.headers.get("Range", "-")
        if is_blob and MODE[0] in ("status", "always"):
            code = int(MODE[1])
            with lock:
                fail = MODE[0] == "always" or state["failed"] < int(MODE[2])
                if fail:
                    state["failed"] += 1
            if fail:
                log(f"{method} {self.path} range={rng} -> {code}")
                # What registries send: TOOMANYREQUESTS for 429 (distribution spec).
                name = "TOOMANYREQUESTS" if code == 429 else "UNKNOWN"
                body = ('{"errors":[{"code":"%s","message":"injected"}]}' % name).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
                return
        conn = http.client.HTTPConnection(UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(method, self.path, headers=headers)
        resp = conn.getresponse()
        if MODE[0] == "slow" and method == "GET" and ("/blobs/" in self.path or "/manifests/" in self.path):
            time.sleep(int(MODE[1]) / 1000)
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding"):
                self.send_header(k, v)
        body = resp.read()
        self.send_header("Connection", "close")
        self.end_headers()
        if method == "HEAD":
            log(f"{method} {self.path} range={rng} -> {resp.status}")
            return
        from_start = rng in ("-", "bytes=0-")
        if is_blob and resp.status in (200, 206) and MODE[0] == "cut" and from_start:
            n = int(MODE[1])
            with lock:
                first = self.path not in state["cut"]
                state["cut"].add(self.path)
            if first and len(body) > n:
                self.wfile.write(body[:n])
                self.wfile.flush()
                log(f"{method} {self.path} range={rng} -> cut after {n}")
                self.close_connection = True
                return
        if is_blob and MODE[0] == "corrupt" and len(body) > 0:
            mid = len(body) // 2
            body = body[:mid] + bytes([body[mid] ^ 1]) + body[mid + 1:]
        log(f"{method} {self.path} range={rng} -> {resp.status} {len(body)}")
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self):
        self.relay("GET")

    def do_HEAD(self):
        self.relay("HEAD")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"PORT={server.server_address[1]}", flush=True)
server.serve_forever()
