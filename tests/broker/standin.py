"""A stand-in for the Strongroom server's token, database-credential, lease and audit-event endpoints.

Used where a test needs the server to misbehave or be observed from inside: an outage during fetch or audit
forwarding, a lease that outlives the approved window, the events the broker forwarded. The wire format follows
Vault's: ``X-Vault-Token``, ``{"auth": {...}}`` / ``{"data": ..., "lease_id": ...}`` bodies, ``{"errors": [...]}``.
"""

from __future__ import annotations

import json
import secrets
from typing import Any


class StandIn:
    def __init__(self, root_token: str = "standin-root") -> None:
        self.root_token = root_token
        self.tokens: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.audit_events: list[dict[str, Any]] = []
        self.down = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        status, payload = self.handle(scope["method"], scope["path"], dict(scope["headers"]),
                                      json.loads(body) if body else {})
        raw = b"" if status == 204 else json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": raw})

    def handle(self, method: str, path: str, headers: dict[bytes, bytes], body: dict[str, Any]
               ) -> tuple[int, dict[str, Any]]:
        if self.down:
            return 503, {"errors": ["Vault is sealed"]}
        token = headers.get(b"x-vault-token", b"").decode()
        if path == "/v1/auth/token/lookup-self":
            info = self.tokens.get(token)
            return (200, {"data": info}) if info else (403, {"errors": ["permission denied"]})
        if token != self.root_token:
            return 403, {"errors": ["permission denied"]}
        if method == "POST" and path == "/v1/auth/token/create":
            new, accessor = "hvs." + secrets.token_urlsafe(24), secrets.token_hex(12)
            self.tokens[new] = {"accessor": accessor, "policies": body["policies"], "meta": body.get("meta"),
                                "ttl": body.get("ttl"), "orphan": body.get("no_parent", False)}
            return 200, {"auth": {"client_token": new, "accessor": accessor, "policies": body["policies"]}}
        if method == "POST" and path == "/v1/auth/token/revoke-accessor":
            self.tokens = {t: i for t, i in self.tokens.items() if i["accessor"] != body.get("accessor")}
            return 204, {}
        if method == "GET" and path.startswith("/v1/database/creds/"):
            role = path.rsplit("/", 1)[1]
            lease = f"database/creds/{role}/{secrets.token_hex(8)}"
            data = {"username": f"v-mpa-{role}-{secrets.token_hex(4)}", "password": secrets.token_urlsafe(20)}
            self.leases[lease] = data
            return 200, {"lease_id": lease, "lease_duration": 3600, "renewable": True, "data": data}
        if method == "PUT" and path == "/v1/sys/leases/revoke":
            self.leases.pop(body.get("lease_id"), None)
            return 204, {}
        if method == "POST" and path == "/v1/sys/audit-events":
            self.audit_events.extend(body["events"])
            return 204, {}
        return 404, {"errors": ["unsupported path"]}
