"""Slack incoming-webhook notifications: Block Kit with a plain-text fallback, user text escaped, sent in background.

Requester-supplied text is escaped (``&``, ``<``, ``>``) so a reason cannot ping ``<!channel>`` or smuggle a link.
Posting happens in a RetryQueue: the audit record is written before anything is queued, and a Slack outage only delays
the message (and, after the last retry, is itself recorded as an audit event).
"""

from __future__ import annotations

from typing import Any

import httpx

HEADER_MAX = 150
SECTION_MAX = 3000

_TITLES = {
    "created": "New MPA request", "reviewed": "MPA review", "approved": "MPA request approved",
    "denied": "MPA request denied", "fetched": "MPA credential fetched", "cancelled": "MPA request cancelled",
    "revoked": "MPA access revoked", "expired": "MPA request expired", "break-glass": "BREAK-GLASS access issued",
    "acknowledged": "Break-glass use acknowledged",
    "break-glass-unacknowledged": "Break-glass use still NOT acknowledged",
}


def escape(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_MAX)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(text, 2000)}]}


def slack_payload(event: dict[str, Any], *, critical: bool = False) -> dict[str, Any]:
    req = event.get("request", {})
    name = event.get("name", "")
    actor = event.get("actor") or {}
    who = escape(actor.get("email") or actor.get("name") or actor.get("subject") or "broker")
    requester = escape(req.get("requester", ""))
    title = _TITLES.get(name, f"MPA {name}")
    if critical:
        title = f":rotating_light: {title} (severity: critical)"
    rid = escape(req.get("id", ""))
    kind = escape(req.get("kind", ""))
    lines = [f"*Request* `{rid}`", f"*Kind* {kind} ({int(req.get('duration', 0)) // 60}m)", f"*Requester* {requester}",
             f"*By* {who}", f"*State* {escape(req.get('state', ''))}"]
    reason = escape(req.get("reason", ""))
    comment = escape((event.get("details") or {}).get("comment", ""))
    approvers = ", ".join(escape(a) for a in req.get("approvers", []))
    text = f"{title}: {kind} for {requester} ({rid}) by {who}. Reason: {reason}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, HEADER_MAX), "emoji": True}},
        _section("\n".join(lines)),
        _section(f"*Reason*\n{reason}"),
    ]
    if comment:
        blocks.append(_section(f"*Comment*\n{comment}"))
    if approvers:
        blocks.append(_context(f"Approved by {approvers}"))
    if name == "created":
        groups = ", ".join(escape(g) for g in (event.get("details") or {}).get("approve_groups", []))
        hint = f"Needs {int(req.get('approvals_needed', 1))} approval(s) from {groups or 'an approver'}; " \
               f"review with `strongroom mpa review {rid}`"
        blocks.append(_context(hint))
    payload: dict[str, Any] = {"text": _clip(text, SECTION_MAX), "blocks": blocks}
    if critical:
        payload["severity"] = "critical"
    return payload


class SlackNotifier:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def post(self, item: tuple[str, dict[str, Any]]) -> None:
        url, payload = item
        response = await self._client.post(url, json=payload, timeout=10.0)
        if response.status_code != 200:
            raise RuntimeError(f"webhook answered {response.status_code}")
