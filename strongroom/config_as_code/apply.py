"""Applying a plan: refusals first (nothing is half-applied because of a missing flag), then the changes in dependency
order, every one made with a short-lived child token whose metadata carries the plan hash.

Audit entries record the caller's token metadata in clear (``auth.metadata``), so each applied change is attributable
to the exact reviewed plan (``config_plan_hash``), and, under ``--require-mpa``, to the MPA request and its approvers,
whose metadata the child token inherits. The hash is also sent as ``X-Strongroom-Plan-Hash``.

``--require-mpa KIND`` accepts only a token the MPA broker minted: an orphan token whose display name is
``mpa-<request id>`` and whose metadata names that request and its approvers (``strongroom/broker/kinds/
strongroom_admin.py``). When the broker's address and an IdP token are at hand, the request is also looked up there to
confirm it is of KIND.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import httpx

from strongroom.cli.api_client import ApiClient, ApiError
from strongroom.config_as_code.hcl import ConfigError, SecretRef
from strongroom.config_as_code.kinds import Ctx, Fields, Live
from strongroom.config_as_code.plan import Change, Plan

PLAN_HASH_HEADER = "X-Strongroom-Plan-Hash"
PLAN_HASH_META = "config_plan_hash"
_CHILD_TTL = "30m"


class ApplyRefused(Exception):
    pass


def check_flags(plan: Plan, allow_delete: bool, allow_destroy: bool) -> None:
    problems: list[str] = []
    for c in plan.changes:
        if c.action == "delete" and not allow_delete:
            problems.append(f"{c.address}: deleting needs --allow-delete")
        if c.needs_destroy and not allow_destroy:
            problems.append(f"{c.address}: {c.action} destroys data (audit device, write-once mount or key) and "
                            "needs --allow-destroy")
    if problems:
        raise ApplyRefused("refusing to apply; nothing was changed:\n  " + "\n  ".join(problems))


def _resolved(fields: Fields, with_secrets: bool) -> Fields:
    out: Fields = {}
    for name, value in fields.items():
        if isinstance(value, SecretRef):
            if with_secrets:
                out[name] = value.resolve()
        elif not name.startswith("_"):
            out[name] = value
    return out


def verify_mpa(kind: str, token_data: dict[str, Any]) -> str:
    """The MPA request id the token was minted for; raises ApplyRefused for any other token."""
    meta = token_data.get("meta") or {}
    request_id = str(meta.get("mpa_request_id") or "")
    display = str(token_data.get("display_name") or "")
    if not (request_id and meta.get("mpa_approvers") and display.endswith(f"mpa-{request_id}")
            and token_data.get("orphan") is True):
        raise ApplyRefused(f"--require-mpa {kind}: this token was not fetched through the MPA broker; request one "
                           f"with `strongroom mpa request {kind}`, have it approved, and apply with the fetched token")
    broker = os.environ.get("STRONGROOM_MPA_ADDR")
    idp = os.environ.get("STRONGROOM_IDP_TOKEN")
    if broker and idp:
        try:
            r = httpx.get(f"{broker.rstrip('/')}/v1/requests/{request_id}", timeout=30.0,
                          headers={"Authorization": f"Bearer {idp}"})
            found = r.json().get("request") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            found = None
        if not isinstance(found, dict) or found.get("kind") != kind:
            raise ApplyRefused(f"--require-mpa {kind}: the broker does not confirm request {request_id} as {kind}")
    return request_id


def apply_token(api: ApiClient, plan_hash: str) -> ApiClient:
    """A child of the caller's token, carrying the plan hash (and the caller's MPA metadata) in its metadata."""
    data = api.request("GET", "auth/token/lookup-self").get("data") or {}
    meta = {str(k): str(v) for k, v in (data.get("meta") or {}).items()}
    meta[PLAN_HASH_META] = plan_hash
    policies = [p for p in data.get("policies") or [] if p != "default"] or ["default"]
    body = {"policies": policies, "meta": meta, "display_name": "config-apply", "ttl": _CHILD_TTL}
    try:
        auth = api.request("POST", "auth/token/create", body).get("auth") or {}
    except ApiError as exc:
        raise ApplyRefused(f"cannot create the token that records the plan hash in the audit log: {exc}") from None
    child = copy.copy(api)  # same address and TLS settings, the child's token
    child.token = str(auth.get("client_token") or "")
    child._http.headers[PLAN_HASH_HEADER] = plan_hash
    return child


def run(api: ApiClient, live: Live, plan: Plan, auth_types: dict[str, str], echo: Callable[[str], None]) -> int:
    """Apply every change of an already checked plan; returns how many were applied."""
    ctx = Ctx(api, live, auth_types)
    writes = sorted((c for c in plan.changes if c.action != "delete"), key=lambda c: c.kind.rank)
    deletes = sorted((c for c in plan.changes if c.action == "delete"), key=lambda c: -c.kind.rank)
    # resolve every secret first: a missing one stops the apply before anything changed
    bodies: dict[int, Fields] = {}
    for c in writes:
        with_secrets = (c.action in ("create", "replace") or c.kind.name == "auth_config"
                        or any(f.sensitive for f in c.fields))
        try:
            bodies[id(c)] = _resolved(c.desired, with_secrets)
        except ConfigError as exc:
            raise ApplyRefused(f"{c.address}: {exc}; nothing was changed") from None
    done = 0
    for c in writes:
        _one(ctx, c, bodies[id(c)])
        done += 1
        echo(f"  {c.action}d {c.address}" if c.action != "replace" else f"  replaced {c.address}")
    for c in deletes:
        assert c.kind.delete is not None
        c.kind.delete(ctx, c.key, c.live)
        done += 1
        echo(f"  deleted {c.address}")
    return done


def _one(ctx: Ctx, c: Change, body: Fields) -> None:
    if c.action == "create":
        c.kind.create(ctx, c.key, body)
    elif c.action == "replace":
        assert c.kind.delete is not None
        c.kind.delete(ctx, c.key, c.live)
        c.kind.create(ctx, c.key, body)
    else:
        changed = {f.name: body[f.name] for f in c.fields if f.name in body}
        c.kind.update(ctx, c.key, changed, {**body, **{k: v for k, v in c.live.items() if k.startswith("_")}})
