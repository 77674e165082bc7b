"""A company IdP for tests (its JWKS served over real HTTP) and a running ``strongroom proxy`` in front of a server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

STRONGROOM = shutil.which("strongroom") or os.path.join(os.path.dirname(sys.executable), "strongroom")
ISSUER = "https://idp.bank.example"
AUDIENCE = "strongroom"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Idp:
    """Signs staff tokens; publishes its public keys as a JWKS document at ``jwks_url``."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:12]
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/.well-known/jwks.json"

    def token(self, user: str, *, ttl: int = 600, issuer: str = ISSUER, audience: str = AUDIENCE,
              key: Any = None, groups: list[str] | None = None) -> str:  # fmt: skip
        now = int(time.time())
        claims = {"iss": issuer, "aud": audience, "sub": user, "iat": now - 5, "nbf": now - 5, "exp": now + ttl,
                  "groups": groups or ["eng"]}  # fmt: skip
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid})

    def close(self) -> None:
        self._httpd.shutdown()


@dataclass
class Proxy:
    proc: subprocess.Popen[bytes]
    addr: str
    log: Path

    def http(self, idp_token: str | None = None, **headers: str) -> httpx.Client:
        h = dict(headers)
        if idp_token:
            h["Authorization"] = f"Bearer {idp_token}"
        return httpx.Client(base_url=self.addr, headers=h, timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_proxy(
    workdir: Path, upstream: str, proxy_token: str | None, idp: Idp, child_ttl: str = "5m",
    pod_env: dict[str, str] | None = None,
) -> Proxy:  # fmt: skip
    """With ``proxy_token`` the proxy uses that token; else it logs in with the pod's ServiceAccount (``pod_env``)."""
    port = free_port()
    if proxy_token is not None:
        token_file = workdir / "proxy-token"
        token_file.write_text(proxy_token)
        token_file.chmod(0o600)
        login = f'login = "token"\ntoken_file = "{token_file}"\n'
    else:
        login = 'login = "kubernetes"\nk8s_role = "staff-proxy"\n'
    cfg = workdir / "proxy.toml"
    cfg.write_text(
        f'listen = "127.0.0.1:{port}"\nupstream = "{upstream}"\n{login}'
        f'child_ttl = "{child_ttl}"\ncookie_secure = false\n\n'
        f'[idp]\nissuer = "{ISSUER}"\naudience = "{AUDIENCE}"\njwks_url = "{idp.jwks_url}"\n'
    )
    log = workdir / "proxy.log"
    env = {**os.environ, **(pod_env or {})}
    with log.open("ab") as out:  # the child keeps its own handle
        proc = subprocess.Popen(
            [STRONGROOM, "proxy", "--config", str(cfg)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited: {log.read_text()}")
        try:
            if httpx.get(f"{addr}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"proxy did not start: {log.read_text()}")
        time.sleep(0.1)
    return Proxy(proc, addr, log)
