"""Alert payloads (Slack incoming webhook, PagerDuty Events v2) and the sender that drains the outbox.

Slack text is escaped with the MPA broker's escaper (``strongroom.broker.notify.escape``): entity names, paths and
display names come from requesters and must not ping ``<!channel>`` or smuggle a link. Critical alerts also go to the
``pagerduty`` webhook in Events v2 shape (``routing_key``, ``event_action: trigger``, ``dedup_key``, ``payload``),
whose ``dedup_key`` is the alert key, so a re-send after a crash folds into the same incident.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from strongroom import backoff
from strongroom.broker.notify import escape
from strongroom.detect.rules import SEVERITIES, Finding

log = logging.getLogger(__name__)

_PD_SEVERITY = {"info": "info", "low": "info", "medium": "warning", "high": "error", "critical": "critical"}
_MAX_ATTEMPTS_LOGGED = 5


def alert_document(f: Finding, who: dict[str, Any], source: str) -> dict[str, Any]:
    ev = f.event
    return {
        "kind": ev.kind,
        "policies": ev.policies,
        "key": f.key,
        "rule": f.rule,
        "severity": f.severity,
        "title": f.title,
        "time": dt.datetime.fromtimestamp(f.time, dt.UTC).isoformat().replace("+00:00", "Z"),
        "source": source,
        "who": who,
        "request": {"path": ev.path, "operation": ev.operation, "remote_address": ev.remote_address,
                    "display_name": ev.display_name, "entity_id": ev.entity_id, "event": ev.name},
        "details": f.details,
    }


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    who = alert.get("who") or {}
    req = alert.get("request") or {}
    title = f"[{alert['severity'].upper()}] {alert['title']}"
    person = escape(who.get("summary") or req.get("display_name") or "unknown identity")
    lines = [f"*Who* {person}"]
    if who.get("team"):
        lines.append(f"*Team* {escape(who['team'])}")
    if req.get("path"):
        lines.append(f"*Path* `{escape(req['path'])}` ({escape(req.get('operation', ''))})")
    if req.get("remote_address"):
        lines.append(f"*From* {escape(req['remote_address'])}")
    lines.append(f"*Rule* {escape(alert['rule'])} · *When* {escape(alert['time'])} · "
                 f"*Source* {escape(alert['source'])}")
    details = ", ".join(f"{escape(k)}={escape(v)}" for k, v in (alert.get("details") or {}).items())
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
    ]
    if details:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": details[:2000]}]})
    return {"text": f"{escape(title)}: {person}"[:3000], "blocks": blocks}


def pagerduty_payload(alert: dict[str, Any], routing_key: str) -> dict[str, Any]:
    who = alert.get("who") or {}
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert["key"],
        "payload": {
            "summary": f"{alert['title']}: {who.get('summary') or (alert.get('request') or {}).get('display_name')}"[
                :1024
            ],
            "source": alert["source"],
            "severity": _PD_SEVERITY.get(alert["severity"], "error"),
            "timestamp": alert["time"],
            "component": "strongroom",
            "class": alert["rule"],
            "custom_details": {"who": who, "request": alert.get("request"), "details": alert.get("details")},
        },
    }


class Channels:
    """Which channels an alert goes to: Slack from ``slack_min_severity``, PagerDuty for critical ones."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.slack_url = str(cfg.get("slack_webhook_url") or "")
        self.slack_min = str(cfg.get("slack_min_severity", "medium"))
        self.pd_url = str(cfg.get("pagerduty_url") or "")
        self.pd_key = str(cfg.get("pagerduty_routing_key") or "")
        self.pd_min = str(cfg.get("pagerduty_min_severity", "critical"))
        for name in (self.slack_min, self.pd_min):
            if name not in SEVERITIES:
                raise ValueError(f"alerts: unknown severity {name!r}")

    def for_severity(self, severity: str) -> list[str]:
        rank = SEVERITIES.index(severity)
        out = []
        if self.slack_url and rank >= SEVERITIES.index(self.slack_min):
            out.append("slack")
        if self.pd_url and rank >= SEVERITIES.index(self.pd_min):
            out.append("pagerduty")
        return out


async def send(client: httpx.AsyncClient, channels: Channels, channel: str, alert: dict[str, Any]) -> None:
    if channel == "log":
        return  # no channel takes this severity: the outbox row and the process log are the record
    if channel == "slack":
        url, body = channels.slack_url, slack_payload(alert)
    else:
        url, body = channels.pd_url, pagerduty_payload(alert, channels.pd_key)
    response = await client.post(url, json=body, timeout=10.0)
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"webhook answered {response.status_code}")


async def drain_forever(
    state: Any,
    channels: Channels,
    metrics: Any,
    stop: asyncio.Event,
    enrich: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
) -> None:
    """Post due outbox rows, each with who it was (``enrich``); retry failures with the one backoff helper."""
    async with httpx.AsyncClient() as client:
        while not stop.is_set():
            rows = state.claim(owner_lease=15.0)
            for key, channel, alert, attempts in rows:
                if not alert.get("who"):
                    alert["who"] = await enrich(alert)
                try:
                    await send(client, channels, channel, alert)
                except (httpx.HTTPError, RuntimeError) as e:
                    wait = backoff.delay(attempts, base=0.5, cap=60.0)
                    state.failed(key, channel, wait, str(e))
                    metrics.delivery(channel, "failed")
                    if attempts < _MAX_ATTEMPTS_LOGGED:
                        log.warning("alert %s to %s failed (%s); retrying in %.1fs", alert["rule"], channel, e, wait)
                    continue
                state.delivered(key, channel)
                metrics.delivery(channel, "sent")
            if not rows:
                try:
                    await asyncio.wait_for(stop.wait(), 0.2)
                except TimeoutError:
                    pass
