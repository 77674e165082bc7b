"""Helpers for broker tests: threads serving ASGI apps and plain HTTP, a test IdP, a webhook receiver, a clock."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {message}")


class AsgiThread:
    """Serve an ASGI app with uvicorn on a free loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on",
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> AsgiThread:
        self.thread.start()
        wait_for(lambda: self.server.started, message="uvicorn start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class TestIdp:
    """A company IdP stand-in: an RSA key whose JWKS is served over HTTP, and ID tokens minted with PyJWT."""

    issuer = "https://idp.example.test"
    audience = "strongroom-mpa"

    def __init__(self) -> None:
        self.key = _RSA_KEY
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": "idp-1", "alg": "RS256", "use": "sig"})
        body = json.dumps({"keys": [jwk]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.jwks_url = f"http://127.0.0.1:{self.http.server_port}/jwks.json"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def token(self, sub: str, groups: list[str], *, email: str | None = None, name: str | None = None,
              issuer: str | None = None, audience: str | None = None, ttl: int = 600, key: Any = None,
              extra: dict[str, Any] | None = None) -> str:
        now = int(time.time())
        claims = {"iss": issuer or self.issuer, "aud": audience or self.audience, "sub": sub, "iat": now,
                  "exp": now + ttl, "groups": groups, "preferred_username": name or sub}
        if email is not None:
            claims["email"] = email
            claims["email_verified"] = True
        claims.update(extra or {})
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": "idp-1"})

    def close(self) -> None:
        self.http.shutdown()


class Receiver:
    """A local HTTP endpoint standing in for a Slack incoming webhook: records JSON posts; can be made to fail."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        self.attempts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                outer.attempts += 1
                status = outer.status
                if status == 200:
                    outer.posts.append((self.path, json.loads(body)))
                reply = b"ok" if status == 200 else b"service_unavailable"
                self.send_response(status)
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [b for p, b in self.posts if p == path]

    def close(self) -> None:
        self.http.shutdown()
