"""sys/internal/access/*: the access explorer (who can, what can), a secret's access history, a lease summary.

Guarded by ordinary policy, not by ``any_token``: the answers describe everyone's access, so a token needs ``read``
(GET) or ``update`` (POST) on ``sys/internal/access/path``, ``…/identity``, ``…/history`` or ``…/leases``. No
built-in policy grants them; give them to the people who review access (root tokens have them). The answers contain
policy names, role names, paths and display names, never a token, accessor or secret value.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from strongroom.core import access
from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core

_KINDS = ("entity", "group", "service_account", "user", "token_role", "auth_role", "policies")
# how much of each audit file a history question reads, from its end: recent activity, bounded work per request
_TAIL_BYTES = 64 * 1024 * 1024
_MAX_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class AccessEvent:
    time: str
    operation: str
    path: str
    who: str
    service: str
    entity_id: str
    outcome: str

    def to_api(self) -> dict[str, str]:
        return {"time": self.time, "operation": self.operation, "path": self.path, "who": self.who,
                "service": self.service, "entity_id": self.entity_id, "outcome": self.outcome}


class AccessLog(Protocol):
    """Where reads-by-whom come from: today the audit files; later the detection store (``strongroom detect``)."""

    async def events(self, paths: Iterable[str], limit: int, prefix: bool = False) -> list[AccessEvent]:
        """Newest first; with ``prefix``, requests on any path under one of ``paths`` (``paths`` + ``/``…)."""
        ...


class AuditFileLog:
    """Recent audit entries of the enabled file devices, newest first (response entries only: one per request)."""

    def __init__(self, files: Iterable[str]) -> None:
        self.files = [f for f in files if f and f != "stdout"]

    async def events(self, paths: Iterable[str], limit: int, prefix: bool = False) -> list[AccessEvent]:
        wanted = {p.lstrip("/") for p in paths}
        prefixes = tuple(p.rstrip("/") + "/" for p in wanted) if prefix else ()
        return await asyncio.to_thread(self._scan, wanted, prefixes, limit)

    def _scan(self, wanted: set[str], prefixes: tuple[str, ...], limit: int) -> list[AccessEvent]:
        found: list[AccessEvent] = []
        for name in self.files:
            for line in _tail_lines(name):
                if '"response"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                event = _event(entry, wanted, prefixes)
                if event is not None:
                    found.append(event)
        found.sort(key=lambda e: e.time, reverse=True)
        return found[:limit]


def _tail_lines(name: str) -> list[str]:
    try:
        with open(name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start = max(0, size - _TAIL_BYTES)
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if start else lines  # the first line of a tail may be cut


def _event(entry: dict[str, Any], wanted: set[str], prefixes: tuple[str, ...]) -> AccessEvent | None:
    if entry.get("type") != "response":
        return None
    req = entry.get("request") or {}
    path = str(req.get("path") or "")
    if path not in wanted and not (prefixes and path.startswith(prefixes)):
        return None
    auth = entry.get("auth") or {}
    meta = auth.get("metadata") or {}
    service = ""
    if meta.get("service_account_namespace") and meta.get("service_account_name"):
        service = f"{meta['service_account_namespace']}/{meta['service_account_name']}"
    # a person (IdP/userpass name) or a service; the display name is what the login chose to show, never a token
    who = str(meta.get("username") or meta.get("user") or meta.get("staff_user") or service
              or auth.get("display_name") or "")  # fmt: skip
    resp = entry.get("response") or {}
    outcome = "error: " + str(entry.get("error")) if entry.get("error") else "ok"
    if isinstance(resp, dict) and resp.get("data", {}) and "errors" in (resp.get("data") or {}):
        outcome = "error"
    return AccessEvent(str(entry.get("time") or ""), str(req.get("operation") or ""), path, who, service,
                       str(auth.get("entity_id") or ""), outcome)


def access_log(core: Core) -> AccessLog:
    files = []
    for path, info in core.audit.list().items():
        if info.get("type") == "file":
            opts = info.get("options") or {}
            files.append(str(opts.get("file_path") or opts.get("path") or ""))
            del path
    return AuditFileLog(files)


def _kv_paths(path: str, core: Core) -> tuple[str, list[str]]:
    """For a KV v2 secret ``secret/k8s/ns/sa/name/v``: its data/metadata API paths; otherwise the path itself."""
    path = path.strip("/")
    hit = core.router.match(path)
    if hit is not None:
        route, rel = hit
        if route.entry.type == "kv" and str((route.entry.options or {}).get("version", "1")) == "2":
            mount = route.entry.route_path
            return mount, [f"{mount}data/{rel}", f"{mount}metadata/{rel}", f"{mount}delete/{rel}",
                           f"{mount}undelete/{rel}", f"{mount}destroy/{rel}"]
    return "", [path]


# expiry histogram buckets (upper bounds in seconds from now), for the leases page
LEASE_BUCKETS = ((300, "< 5 min"), (3600, "< 1 hour"), (86400, "< 1 day"), (7 * 86400, "< 1 week"),
                 (float("inf"), "later"))  # fmt: skip


async def lease_summary(core: Core, now: float) -> dict[str, Any]:
    """Leases counted by mount and role (the request path inside the mount), with expiry buckets.
    Lease ids and the tokens behind them are not part of the answer."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    seen = 0
    stack = [""]
    while stack and seen < access.MAX_SCAN:
        prefix = stack.pop()
        for key in await core.expiration.list_prefix(prefix):
            if key.endswith("/"):
                stack.append(prefix + key)
                continue
            entry = await core.expiration.get(prefix + key)
            seen += 1
            if entry is None:
                continue
            role = entry.relative_path  # the request path inside the mount (creds/<role>), without the lease's id
            g = groups.setdefault((entry.mount_path, role), {
                "mount": entry.mount_path, "role": role, "count": 0, "irrevocable": 0, "next_expiry": None,
                "buckets": {label: 0 for _, label in LEASE_BUCKETS}})
            g["count"] += 1
            g["irrevocable"] += 1 if entry.irrevocable else 0
            left = entry.expire_time - now
            g["buckets"][next(label for bound, label in LEASE_BUCKETS if left < bound)] += 1
            if g["next_expiry"] is None or entry.expire_time < g["next_expiry"]:
                g["next_expiry"] = entry.expire_time
    rows = sorted(groups.values(), key=lambda g: (g["mount"], g["role"]))
    return {"groups": rows, "total": sum(g["count"] for g in rows), "truncated": bool(stack),
            "buckets": [label for _, label in LEASE_BUCKETS]}


def paths(core: Core) -> list[Path]:
    async def who(req: Request, fd: FieldData) -> Response:
        path = (fd.get("path") or "").strip()
        if not path:
            raise InvalidRequest("path must be supplied")
        return Response(data=await access.who_can(core, path))

    async def what(req: Request, fd: FieldData) -> Response:
        kind, name = fd.get("kind") or "", (fd.get("name") or "").strip()
        if kind not in _KINDS:
            raise InvalidRequest(f"kind must be one of: {', '.join(_KINDS)}")
        if not name:
            raise InvalidRequest("name must be supplied")
        out = await access.what_can(core, kind, name, fd.get("paths") or [])
        if out is None:
            raise NotFound(f"no {kind.replace('_', ' ')} named {name!r}")
        return Response(data=out)

    async def history(req: Request, fd: FieldData) -> Response:
        path = (fd.get("path") or "").strip()
        if not path:
            raise InvalidRequest("path must be supplied")
        limit = fd.get("limit") if fd.has("limit") else 200
        if limit < 1 or limit > _MAX_EVENTS:
            raise InvalidRequest(f"limit must be between 1 and {_MAX_EVENTS}")
        mount, api_paths = _kv_paths(path, core)
        events = await access_log(core).events(api_paths, limit, prefix=bool(fd.get("prefix")))
        return Response(data={"path": path.strip("/"), "mount": mount, "source": "audit file",
                               "events": [e.to_api() for e in events]})

    async def leases(req: Request, fd: FieldData) -> Response:
        return Response(data=await lease_summary(core, time.time()))

    path_field = {"path": Field(FieldType.STRING, "The request path to explain.")}
    ident_fields = {
        "kind": Field(FieldType.STRING, "entity, group, service_account, user, token_role, auth_role or policies."),
        "name": Field(FieldType.STRING, "Its name (namespace/name, mount/role, or a,b for policies)."),
        "paths": Field(FieldType.COMMA_STRING_LIST, "Paths to evaluate exactly."),
    }
    history_fields = {
        "path": Field(FieldType.STRING, "The secret's path (for KV v2, without data/)."),
        "limit": Field(FieldType.INT, "How many events at most (newest first).", default=200),
        "prefix": Field(FieldType.BOOL, "Also every path below it (all versions of a secret name).", default=False),
    }
    return [
        Path(r"internal/access/path", {Operation.READ: who, Operation.UPDATE: who}, path_field,
             summary="Who can do what on a path."),
        Path(r"internal/access/identity", {Operation.READ: what, Operation.UPDATE: what}, ident_fields,
             summary="What an identity can do."),
        Path(r"internal/access/leases", {Operation.READ: leases}, {},
             summary="Leases counted by engine and role, with an expiry histogram."),
        Path(r"internal/access/history", {Operation.READ: history, Operation.UPDATE: history}, history_fields,
             summary="Recent requests on a secret, from the audit trail."),
    ]
