"""A stand-in for the Kubernetes API server, answering only ``/api/v1/serviceaccounts`` list and watch.

This is the one stand-in the project allows: a Kubernetes API server cannot run on these machines. It speaks the real
wire format: a list is ``{"kind": "ServiceAccountList", "apiVersion": "v1", "metadata": {"resourceVersion": ...},
"items": [...]}``; ``?watch=true&resourceVersion=N`` streams newline-delimited ``{"type": "ADDED"|"MODIFIED"|
"DELETED", "object": {...}}`` events newer than N until ``timeoutSeconds``; a resourceVersion older than the kept
history answers ``410 Gone`` with a ``Status`` object, as the real server does, and a wrong bearer token ``401``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


def service_account(name: str, namespace: str = "default", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "annotations": dict(annotations or {}),
        },
    }


class KubeAPI:
    def __init__(self, token: str = "kube-reader-token") -> None:
        self.token = token
        self._objects: dict[str, dict[str, Any]] = {}
        self._events: list[tuple[int, str, dict[str, Any]]] = []
        self._rv = 100
        self._cond = threading.Condition()
        self.requests: list[str] = []
        self.serve_empty = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- state ---------------------------------------------------------------------------------------------------

    def put(self, sa: dict[str, Any]) -> None:
        md = sa["metadata"]
        k = f"{md['namespace']}/{md['name']}"
        with self._cond:
            self._rv += 1
            sa = json.loads(json.dumps(sa))
            sa["metadata"]["resourceVersion"] = str(self._rv)
            kind = "MODIFIED" if k in self._objects else "ADDED"
            self._objects[k] = sa
            self._events.append((self._rv, kind, sa))
            self._cond.notify_all()

    def delete(self, name: str, namespace: str = "default") -> None:
        k = f"{namespace}/{name}"
        with self._cond:
            sa = self._objects.pop(k)
            self._rv += 1
            sa = {**sa, "metadata": {**sa["metadata"], "resourceVersion": str(self._rv)}}
            self._events.append((self._rv, "DELETED", sa))
            self._cond.notify_all()

    # --- server --------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self, port: int = 0) -> KubeAPI:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
                parts = urlsplit(self.path)
                if parts.path != "/api/v1/serviceaccounts":
                    return self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                if query.get("watch") in ("true", "1"):
                    return self._watch(int(query.get("resourceVersion") or 0), int(query.get("timeoutSeconds") or 30))
                with api._cond:
                    items = [] if api.serve_empty else list(api._objects.values())
                    rv = str(api._rv)
                self._json(
                    200,
                    {
                        "kind": "ServiceAccountList",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": rv},
                        "items": items,
                    },
                )

            def _watch(self, since: int, timeout: int) -> None:
                with api._cond:
                    oldest = api._events[0][0] if api._events else api._rv
                    if api._events and since < oldest - 1:
                        return self._json(410, _status(410, "Expired", f"too old resource version: {since}"))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                deadline = time.monotonic() + timeout
                sent = since
                try:
                    while time.monotonic() < deadline and api._server is not None:
                        with api._cond:
                            pending = [e for e in api._events if e[0] > sent]
                            if not pending:
                                api._cond.wait(timeout=0.2)
                                continue
                        for rv, kind, obj in pending:
                            self.wfile.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                            self.wfile.flush()
                            sent = rv
                except (BrokenPipeError, ConnectionResetError):
                    return

            def _json(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with self._cond:
                self._cond.notify_all()
            server.shutdown()
            server.server_close()


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}  # fmt: skip
