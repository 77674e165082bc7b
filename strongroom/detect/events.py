"""One audit line, normalised into the few fields rules look at."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from typing import Any

_DENIED = ("permission denied", "missing client token")
_epoch_seconds: dict[str, int] = {}


@dataclass(slots=True)
class Event:
    kind: str  # request | response | event | chain-resumed
    time: float
    operation: str = ""
    path: str = ""
    mount_type: str = ""
    entity_id: str = ""
    token: str = ""  # the HMAC'd client token: the subject when there is no entity
    display_name: str = ""
    remote_address: str = ""
    error: str = ""
    policies: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # who reported an ``event`` entry (mpa-broker)
    name: str = ""  # an ``event`` entry's name (approved, break-glass, …)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def denied(self) -> bool:
        return bool(self.error) and any(d in self.error for d in _DENIED)

    @property
    def subject(self) -> str:
        return self.entity_id or self.token or self.display_name or self.remote_address


def parse_time(text: str) -> float:
    """RFC 3339 UTC time (as the audit entries write it) to a Unix timestamp; cached per second."""
    if len(text) < 20:
        return 0.0
    head = text[:19]
    secs = _epoch_seconds.get(head)
    if secs is None:
        try:
            secs = calendar.timegm(
                (int(head[0:4]), int(head[5:7]), int(head[8:10]), int(head[11:13]), int(head[14:16]), int(head[17:19]))
            )
        except ValueError:
            return 0.0
        if len(_epoch_seconds) > 4096:
            _epoch_seconds.clear()
        _epoch_seconds[head] = secs
    frac = text[19:].rstrip("Z")
    return secs + (float("0" + frac) if frac.startswith(".") and frac[1:].isdigit() else 0.0)


def normalise(doc: dict[str, Any]) -> Event:
    kind = str(doc.get("type", ""))
    ev = Event(kind=kind, time=parse_time(str(doc.get("time", ""))))
    if kind == "event":
        raw_body = doc.get("event")
        body: dict[str, Any] = raw_body if isinstance(raw_body, dict) else {}
        ev.source = str(doc.get("source", ""))
        # the MPA broker names its events ``name``; the core's key ceremonies and undos, ``type``
        ev.name = str(body.get("name") or body.get("type") or "")
        ev.detail = body
        raw_actor = body.get("actor")
        actor: dict[str, Any] = raw_actor if isinstance(raw_actor, dict) else {}
        ev.display_name = str(actor.get("email") or actor.get("name") or actor.get("subject") or "")
        return ev
    raw_auth, raw_req = doc.get("auth"), doc.get("request")
    auth: dict[str, Any] = raw_auth if isinstance(raw_auth, dict) else {}
    req: dict[str, Any] = raw_req if isinstance(raw_req, dict) else {}
    ev.operation = str(req.get("operation", ""))
    ev.path = str(req.get("path", ""))
    ev.mount_type = str(req.get("mount_type", ""))
    ev.remote_address = str(req.get("remote_address", ""))
    ev.entity_id = str(auth.get("entity_id", "") or "")
    ev.token = str(auth.get("client_token", "") or "")
    ev.display_name = str(auth.get("display_name", "") or "")
    ev.policies = [str(p) for p in auth.get("policies") or []]
    meta = auth.get("metadata")
    ev.metadata = meta if isinstance(meta, dict) else {}
    ev.error = str(doc.get("error", "") or "")
    return ev
