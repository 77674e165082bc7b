"""The MPA state machine: who may request, review, fetch, cancel, revoke and break glass, and when.

    pending ──approve×N──▶ approved ──fetch (once, requester only)──▶ fetched
       │  └─deny─▶ denied        │                                      │
       ├─cancel─▶ cancelled ◀────┤ cancel                               └─revoke / window closes─▶ revoked / ended
       └─request TTL─▶ expired ◀─┘ access window passes before fetch
    break-glass: issued at once to the break-glass group, critical everywhere, open until someone else acknowledges.

Every change is a compare-and-save on the stored request, so racing reviewers or fetchers cannot both win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from strongroom import crypto
from strongroom.broker.audit_log import AuditWriteError
from strongroom.broker.config import BrokerConfig, KindConfig
from strongroom.broker.events import EventSink
from strongroom.broker.kinds.base import CredentialKind, KindError
from strongroom.broker.models import (
    APPROVED,
    CANCELLED,
    DENIED,
    EXPIRED,
    FETCHED,
    PENDING,
    REVOKED,
    Identity,
    MpaRequest,
    Review,
)
from strongroom.broker.reasons import ReasonRejected, check_reason
from strongroom.broker.store import RequestStore
from strongroom.framework.durations import parse_duration

log = logging.getLogger(__name__)
_CAS_ATTEMPTS = 20


class BrokerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Broker:
    def __init__(self, config: BrokerConfig, store: RequestStore, kinds: dict[str, CredentialKind],
                 events: EventSink, clock: Callable[[], float]) -> None:
        self.config = config
        self.store = store
        self.kinds = kinds
        self.events = events
        self.clock = clock

    # --- helpers ------------------------------------------------------------------------------------------------

    def _kind(self, name: object) -> tuple[KindConfig, CredentialKind]:
        if not isinstance(name, str) or name not in self.config.kinds:
            raise BrokerError(400, f"unknown credential kind {name!r}; known: {', '.join(sorted(self.config.kinds))}")
        return self.config.kinds[name], self.kinds[name]

    def _load(self, request_id: object) -> MpaRequest:
        req = self.store.get(request_id) if isinstance(request_id, str) and len(request_id) < 100 else None
        if req is None:
            raise BrokerError(404, "no such request")
        return self._refresh(req)

    def _save(self, req: MpaRequest) -> bool:
        return self.store.compare_and_save(req)

    def _refresh(self, req: MpaRequest) -> MpaRequest:
        """Apply time-based transitions (pending past its TTL, approved past its window) before anyone acts on it."""
        now = self.clock()
        for _ in range(_CAS_ATTEMPTS):
            why = ""
            if req.state == PENDING and now >= req.request_expires_at:
                why = "no decision before the request expired"
            elif req.state == APPROVED and req.access_expires_at is not None and now >= req.access_expires_at:
                why = "the approved access window closed before the credential was fetched"
            if not why:
                return req
            req.state, req.ended_at = EXPIRED, now
            if self._save(req):
                self.events.emit("expired", req, None, details={"why": why})
                return req
            req = self.store.get(req.id) or req
        return req

    @staticmethod
    def _in(who: Identity, groups: tuple[str, ...]) -> bool:
        return bool(set(who.groups) & set(groups))

    def may_view(self, who: Identity, req: MpaRequest) -> bool:
        cfg = self.config.kinds.get(req.kind)
        groups = (cfg.request_groups + cfg.approve_groups) if cfg else ()
        return who.same_person(req.requester) or self._in(who, groups + self.config.break_glass_groups)

    def may_review(self, who: Identity, req: MpaRequest) -> bool:
        cfg = self.config.kinds.get(req.kind)
        if cfg is None or who.same_person(req.requester):
            return False
        if req.break_glass:
            return req.needs_acknowledgement and self._in(who, cfg.approve_groups + self.config.break_glass_groups)
        reviewed = any(who.same_person(r.reviewer) for r in req.reviews)
        return req.state == PENDING and not reviewed and self._in(who, cfg.approve_groups)

    def _duration(self, cfg: KindConfig, value: object) -> int:
        if value in (None, ""):
            return cfg.max_duration
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise BrokerError(400, f"duration {value!r} is not a duration such as 15m") from None
        if seconds <= 0:
            raise BrokerError(400, "duration must be positive")
        if seconds > cfg.max_duration:
            raise BrokerError(400, f"duration exceeds the maximum of {cfg.max_duration // 60}m for {cfg.name}")
        return seconds

    # --- the flow -----------------------------------------------------------------------------------------------

    def create(self, who: Identity, kind: object, reason: object, duration: object = None,
               params: object = None) -> MpaRequest:
        cfg, impl = self._kind(kind)
        if not self._in(who, cfg.request_groups):
            raise BrokerError(403, f"you are not in a group that may request {cfg.name}")
        try:
            text = check_reason(reason)
        except ReasonRejected as exc:
            raise BrokerError(400, str(exc)) from None
        seconds = self._duration(cfg, duration)
        if params is not None and not isinstance(params, dict):
            raise BrokerError(400, "params must be an object")
        try:
            clean = impl.validate_params(dict(params or {}))
        except KindError as exc:
            raise BrokerError(400, str(exc)) from None
        now = self.clock()
        req = MpaRequest(
            id=f"mpa-{crypto.random_base62(16)}", kind=cfg.name, requester=who.ref(), reason=text, duration=seconds,
            state=PENDING, created_at=now, request_expires_at=now + cfg.request_ttl, approvals_needed=cfg.approvals,
            params=clean,
        )
        self.store.insert(req)
        self.events.emit("created", req, who, details={"approve_groups": list(cfg.approve_groups)})
        return req

    def review(self, who: Identity, request_id: object, decision: object, comment: object) -> MpaRequest:
        if decision not in ("approve", "deny"):
            raise BrokerError(400, "decision must be approve or deny")
        comment = comment.strip() if isinstance(comment, str) else ""
        if len(comment) > 2000:
            raise BrokerError(400, "comment is too long")
        for _ in range(_CAS_ATTEMPTS):
            req = self._load(request_id)
            if req.break_glass:
                return self._acknowledge(who, req, decision, comment)
            cfg = self.config.kinds.get(req.kind)
            if who.same_person(req.requester):
                # an attempt to approve one's own request is itself worth an alert (detect's self-approval rule)
                self.events.emit("self-approval-refused", req, who, details={"decision": decision})
                raise BrokerError(403, "you cannot review your own request")
            if cfg is None or not self._in(who, cfg.approve_groups):
                raise BrokerError(403, f"you are not in a group that may approve {req.kind}")
            if req.state != PENDING:
                raise BrokerError(409, f"request is {req.state}; its decision is final")
            if any(who.same_person(r.reviewer) for r in req.reviews):
                raise BrokerError(409, "you have already reviewed this request")
            if decision == "deny" and not comment:
                raise BrokerError(400, "a denial needs a comment explaining why")
            now = self.clock()
            req.reviews.append(Review(reviewer=who.ref(), decision=decision, comment=comment, at=now))
            if decision == "deny":
                req.state, req.ended_at = DENIED, now
            elif len(req.approvers) >= req.approvals_needed:
                # The access clock starts now, not when the request was made.
                req.state, req.approved_at, req.access_expires_at = APPROVED, now, now + req.duration
            if not self._save(req):
                continue
            self.events.emit("reviewed", req, who, details={"decision": decision, "comment": comment,
                                                            "approvals": len(req.approvers)})
            if req.state in (APPROVED, DENIED):
                self.events.emit(req.state, req, who, details={"comment": comment})
            return req
        raise BrokerError(409, "the request changed too often; try again")

    def _acknowledge(self, who: Identity, req: MpaRequest, decision: object, comment: str) -> MpaRequest:
        cfg = self.config.kinds.get(req.kind)
        if who.same_person(req.requester):
            raise BrokerError(403, "you cannot acknowledge your own break-glass use")
        if cfg is None or not self._in(who, cfg.approve_groups + self.config.break_glass_groups):
            raise BrokerError(403, f"you are not in a group that may review {req.kind}")
        if not req.needs_acknowledgement:
            raise BrokerError(409, "this break-glass use is already acknowledged")
        if decision != "approve":
            raise BrokerError(409, "break-glass access was already issued; acknowledge it, or end it with mpa revoke")
        if not comment:
            raise BrokerError(400, "acknowledging a break-glass use needs a comment")
        now = self.clock()
        req.reviews.append(Review(reviewer=who.ref(), decision="acknowledge", comment=comment, at=now))
        req.acknowledged_by = who.ref()
        if not self._save(req):
            raise BrokerError(409, "the request changed; try again")
        self.events.emit("acknowledged", req, who, details={"comment": comment}, critical=True)
        return req

    async def fetch(self, who: Identity, request_id: object) -> dict[str, Any]:
        for _ in range(_CAS_ATTEMPTS):
            req = self._load(request_id)
            if (who.issuer, who.subject) != (req.requester["issuer"], req.requester["subject"]):
                raise BrokerError(403, "only the requester may fetch this credential")
            if req.state == PENDING:
                raise BrokerError(409, f"request is awaiting approval ({len(req.approvers)} of {req.approvals_needed})")
            if req.state == FETCHED:
                raise BrokerError(410, "the credential was already fetched; it can be fetched only once")
            if req.state != APPROVED:
                raise BrokerError(410, f"request is {req.state}; nothing can be fetched")
            now = self.clock()
            req.state, req.fetched_at = FETCHED, now
            if self._save(req):
                return await self._issue(who, req, now)
        raise BrokerError(409, "the request changed too often; try again")

    async def _issue(self, who: Identity, req: MpaRequest, now: float) -> dict[str, Any]:
        """Mint the credential for a request this caller has just moved to fetched; roll back if minting fails."""
        assert req.access_expires_at is not None
        ttl = max(1, int(req.access_expires_at - now))
        try:
            minted = await self.kinds[req.kind].mint(req, ttl, now)
        except KindError as exc:
            req.state, req.fetched_at = APPROVED, None
            self._save(req)
            self.events.emit("fetch-failed", req, who, details={"error": str(exc)})
            raise BrokerError(502, f"could not mint the credential: {exc}") from None
        req.credential_ref = minted.ref
        if not self._save(req):
            # Revoked while we were minting: the fresh credential must not survive.
            await self._end_credential(minted.ref, req.kind)
            raise BrokerError(409, "the request was revoked while the credential was being minted")
        try:
            self.events.emit("fetched", req, who, details={"credential_type": minted.credential.get("type"),
                                                           "expires_at": minted.expires_at,
                                                           # a fingerprint, not the accessor or lease id itself: the
                                                           # events are forwarded un-HMAC'd, and an accessor can act
                                                           "reference_sha256": _fingerprint(minted.ref)})
        except AuditWriteError:
            # An issue that cannot be recorded must not be handed out.
            await self._end_credential(minted.ref, req.kind)
            raise
        return {"request": req.to_dict(), "credential": minted.credential}

    async def _end_credential(self, ref: dict[str, Any] | None, kind: str) -> None:
        if ref:
            await self.kinds[kind].revoke(ref)

    def cancel(self, who: Identity, request_id: object) -> MpaRequest:
        for _ in range(_CAS_ATTEMPTS):
            req = self._load(request_id)
            if (who.issuer, who.subject) != (req.requester["issuer"], req.requester["subject"]):
                raise BrokerError(403, "only the requester may cancel a request")
            if req.state not in (PENDING, APPROVED):
                raise BrokerError(409, f"request is {req.state}; it can no longer be cancelled")
            req.state, req.ended_at = CANCELLED, self.clock()
            if self._save(req):
                self.events.emit("cancelled", req, who)
                return req
        raise BrokerError(409, "the request changed too often; try again")

    async def revoke(self, who: Identity, request_id: object, comment: object = None) -> MpaRequest:
        for _ in range(_CAS_ATTEMPTS):
            req = self._load(request_id)
            cfg = self.config.kinds.get(req.kind)
            approver = cfg is not None and self._in(who, cfg.approve_groups + self.config.break_glass_groups)
            if not who.same_person(req.requester) and not approver:
                raise BrokerError(403, "only the requester or an approver of this kind may revoke")
            if req.state not in (APPROVED, FETCHED) or req.ended_at is not None:
                raise BrokerError(409, f"request is {req.state}; there is no live access to revoke")
            ref = req.credential_ref
            req.state, req.ended_at = REVOKED, self.clock()
            if not self._save(req):
                continue
            try:
                await self._end_credential(ref, req.kind)
            except KindError as exc:
                self.events.emit("revoke-failed", req, who, details={"error": str(exc)}, critical=True)
                raise BrokerError(502, f"marked revoked, but the credential could not be ended: {exc}") from None
            self.events.emit("revoked", req, who, details={"comment": comment if isinstance(comment, str) else ""})
            return req
        raise BrokerError(409, "the request changed too often; try again")

    async def break_glass(self, who: Identity, kind: object, reason: object) -> dict[str, Any]:
        cfg, _ = self._kind(kind)
        if not self._in(who, self.config.break_glass_groups):
            raise BrokerError(403, "you are not in the break-glass group")
        if not cfg.break_glass:
            raise BrokerError(403, f"{cfg.name} cannot be issued through break-glass")
        try:
            text = check_reason(reason)
        except ReasonRejected as exc:
            raise BrokerError(400, str(exc)) from None
        now = self.clock()
        seconds = min(cfg.max_duration, self.config.break_glass_duration)
        req = MpaRequest(
            id=f"mpa-bg-{crypto.random_base62(14)}", kind=cfg.name, requester=who.ref(), reason=text,
            duration=seconds, state=FETCHED, created_at=now, request_expires_at=now, approvals_needed=0,
            approved_at=now, access_expires_at=now + seconds, fetched_at=now, break_glass=True,
        )
        self.store.insert(req)
        self.events.emit("break-glass", req, who, critical=True)
        return await self._issue(who, req, now)

    def _remind(self, req: MpaRequest, now: float) -> None:
        last = req.reminded_at or req.created_at
        if now - last < self.config.break_glass_remind_every:
            return
        req.reminded_at = now
        if self._save(req):
            self.events.emit("break-glass-unacknowledged", req, None, critical=True,
                             details={"open_for_seconds": int(now - req.created_at)})

    # --- queries and housekeeping -------------------------------------------------------------------------------

    def show(self, who: Identity, request_id: object) -> MpaRequest:
        req = self._load(request_id)
        if not self.may_view(who, req):
            raise BrokerError(404, "no such request")
        return req

    def list(self, who: Identity, *, reviewable: bool = False, states: tuple[str, ...] | None = None,
             mine: bool = False) -> list[MpaRequest]:
        out = []
        for req in self.store.list(states):
            req = self._refresh(req)
            if not self.may_view(who, req) or (mine and not who.same_person(req.requester)):
                continue
            if reviewable and not self.may_review(who, req):
                continue
            out.append(req)
        return out

    async def sweep(self) -> None:
        """Expire stale requests, end credentials whose window has closed, re-page unacknowledged break-glass."""
        now = self.clock()
        for req in self.store.list((FETCHED, REVOKED)):
            if req.needs_acknowledgement:
                self._remind(req, now)
        for req in self.store.list((PENDING, APPROVED)):
            self._refresh(req)
        for req in self.store.list((FETCHED,)):
            if req.ended_at is not None or req.access_expires_at is None or now < req.access_expires_at:
                continue
            try:
                await self._end_credential(req.credential_ref, req.kind)
            except KindError as exc:
                log.warning("could not end the credential of %s yet: %s", req.id, exc)
                continue  # tried again on the next sweep
            req.ended_at = now
            if self._save(req):
                self.events.emit("expired", req, None, details={"why": "the approved access window closed"})


def _fingerprint(ref: object) -> str:
    return crypto.sha256_hex(str(ref).encode()) if ref else ""
