"""One place where a state change becomes an audit event: the local chain first, then Strongroom and Slack.

The hash-chained file is the record; it is written synchronously and a failure to write it fails the operation.
Forwarding to the Strongroom server's audit trail and posting to Slack are queued and retried in the background.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from strongroom import crypto
from strongroom.broker.audit_log import HashChainLog
from strongroom.broker.models import Identity, MpaRequest
from strongroom.broker.notify import slack_payload
from strongroom.broker.retry import RetryQueue

# Events that reach Slack: every request, review, fetch and break-glass use, and how each request ended.
NOTIFY = {"created", "reviewed", "approved", "denied", "fetched", "cancelled", "revoked", "expired", "break-glass",
          "acknowledged", "break-glass-unacknowledged"}


def _who(person: Identity | dict[str, str] | None) -> dict[str, str] | None:
    if person is None:
        return None
    return person.ref() if isinstance(person, Identity) else dict(person)


def request_summary(req: MpaRequest) -> dict[str, Any]:
    d = req.to_dict()
    return {
        "id": req.id, "kind": req.kind, "state": req.state, "reason": req.reason, "duration": req.duration,
        "requester": req.requester.get("email") or req.requester.get("name") or req.requester.get("subject"),
        "requester_identity": req.requester, "approvals_needed": req.approvals_needed, "approvers": d["approvers"],
        "break_glass": req.break_glass, "params": req.params,
    }


class EventSink:
    def __init__(
        self,
        log: HashChainLog,
        *,
        forwarder: RetryQueue | None = None,
        slack: RetryQueue | None = None,
        slack_url: str | None = None,
        critical_url: str | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.log = log
        self._forwarder = forwarder
        self._slack = slack
        self._slack_url = slack_url
        self._critical_url = critical_url
        self._clock = clock

    def emit(self, name: str, req: MpaRequest | None, actor: Identity | dict[str, str] | None, *,
             details: dict[str, Any] | None = None, critical: bool = False) -> dict[str, Any]:
        critical = critical or bool(req and req.break_glass)
        event = {
            "time": dt.datetime.fromtimestamp(self._clock(), dt.UTC).isoformat().replace("+00:00", "Z"),
            "event_id": crypto.new_uuid(),
            "source": "mpa-broker",
            "type": f"mpa.{name}",
            "name": name,
            "severity": "critical" if critical else "info",
            "correlation_id": req.id if req else None,
            "actor": _who(actor),
            "request": request_summary(req) if req else None,
            "details": details or {},
        }
        record = self.log.append(event)
        if self._forwarder is not None:
            self._forwarder.submit(record)
        if self._slack is not None and name in NOTIFY:
            if self._slack_url:
                self._slack.submit((self._slack_url, slack_payload(event, critical=critical)))
            if critical and self._critical_url:
                self._slack.submit((self._critical_url, slack_payload(event, critical=True)))
        return record

    def delivery_failed(self, channel: str, problem: str) -> None:
        # Recorded but never notified, so a dead webhook cannot loop.
        self.log.append({
            "time": dt.datetime.fromtimestamp(self._clock(), dt.UTC).isoformat().replace("+00:00", "Z"),
            "event_id": crypto.new_uuid(), "source": "mpa-broker", "type": "mpa.delivery-failed",
            "name": "delivery-failed", "severity": "warning", "correlation_id": None, "actor": None,
            "request": None, "details": {"channel": channel, "problem": problem},
        })
