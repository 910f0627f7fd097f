#!/usr/bin/python3
"""A loopback token service for the test bed's token-auth registry: the
`WWW-Authenticate: Bearer realm=...,service=...,scope=...` flow of ghcr.io,
Docker Hub, quay.io and Harbor, served by Debian's docker-registry.

    token_server.py --port P --key KEY.pem --cert CERT.pem --issuer I
                    --service S --log FILE [--user U --password W]
                    [--anonymous-denied] [--expiry SECONDS] [--opaque-expiry]

GET /token?service=S&scope=repository:NAME:pull,push (scope may repeat)
answers {"token", "access_token", "expires_in", "issued_at"} with a JWT
signed by KEY; its header carries CERT (x5c), which the registry trusts
through `auth.token.rootcertbundle`.

Policy: anonymous requests get pull only (refused with 401 under
--anonymous-denied); the user with the right password gets pull and push;
a wrong password is a 401. Actions not granted are left out of the token,
as real token services do, so the registry refuses what the token lacks.

--expiry sets the token lifetime, written as the `exp` claim, so a client
can refresh a token before it runs out. --opaque-expiry hides the lifetime
from clients instead, as ghcr.io's opaque tokens do: the claim is written
as `EXP`, which the registry's Go JSON decoder takes for `exp` (it matches
keys case-insensitively) and a client reading `exp` does not see. The
client must then guess, and learns the token ran out from the registry's
401. docker-registry accepts a token up to 60 s past its expiry (clock-skew
leeway), so the hidden one is written 60 s early: the registry refuses the
token --expiry seconds after it was issued, within a test's time.

Logs one line per request to FILE: `user=<name|-> scope=<...> -> <result>`.
"""
import argparse
import base64
import datetime
import http.server
import json
import threading
import time
import urllib.parse
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

REGISTRY_LEEWAY = 60  # seconds docker-registry adds to `exp`

args = argparse.ArgumentParser()
args.add_argument("--port", type=int, required=True)
args.add_argument("--key", required=True)
args.add_argument("--cert", required=True)
args.add_argument("--issuer", required=True)
args.add_argument("--service", required=True)
args.add_argument("--log", required=True)
args.add_argument("--user", default="pgoci")
args.add_argument("--password", default="pgoci-secret-pw")
args.add_argument("--anonymous-denied", action="store_true")
args.add_argument("--expiry", type=int, default=300)
args.add_argument("--opaque-expiry", action="store_true")
opts = args.parse_args()

with open(opts.key, "rb") as f:
    KEY = f.read()
with open(opts.cert, "rb") as f:
    CERT_DER = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
X5C = [base64.b64encode(CERT_DER).decode()]
log_lock = threading.Lock()


def log(line):
    with log_lock, open(opts.log, "a") as f:
        f.write(line + "\n")


def parse_scope(scope):
    """`repository:NAME:pull,push` -> (type, name, [actions]); None if malformed."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


def who(header):
    """(user or None, ok): None for anonymous, ok False for bad credentials."""
    if not header:
        return None, True
    method, _, value = header.partition(" ")
    if method.lower() != "basic":
        return None, False
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except Exception:
        return None, False
    return user, user == opts.user and password == opts.password


def make_token(subject, access):
    now = int(time.time())
    claims = {
        "iss": opts.issuer,
        "sub": subject,
        "aud": opts.service,
        "nbf": now - 5,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "access": access,
    }
    if opts.opaque_expiry:
        claims["EXP"] = now + opts.expiry - REGISTRY_LEEWAY
    else:
        claims["exp"] = now + opts.expiry
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"x5c": X5C})


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, doc, extra=()):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/token":
            return self.answer(404, {"details": "not found"})
        query = urllib.parse.parse_qs(url.query)
        scopes = query.get("scope", [])
        user, ok = who(self.headers.get("Authorization"))
        shown = f"user={user or '-'} scope={' '.join(scopes) or '-'}"
        challenge = [("WWW-Authenticate", 'Basic realm="pgoci bed token service"')]
        if not ok:
            log(f"{shown} -> 401 bad credentials")
            return self.answer(401, {"details": "incorrect username or password"}, challenge)
        if user is None and opts.anonymous_denied:
            log(f"{shown} -> 401 anonymous denied")
            return self.answer(401, {"details": "authentication required"}, challenge)
        if query.get("service", [opts.service])[0] != opts.service:
            log(f"{shown} -> 400 unknown service")
            return self.answer(400, {"details": "unknown service"})
        allowed = {"pull", "push"} if user else {"pull"}
        access = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None or parsed[0] != "repository":
                continue
            kind, name, actions = parsed
            granted = [a for a in actions if a in allowed]
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        token = make_token(user or "", access)
        granted = ";".join(f"{a['name']}:{','.join(a['actions'])}" for a in access) or "nothing"
        log(f"{shown} -> 200 {granted}")
        issued = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self.answer(200, {"token": token, "access_token": token,
                          "expires_in": opts.expiry, "issued_at": issued})


server = http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
server.daemon_threads = True
server.serve_forever()
