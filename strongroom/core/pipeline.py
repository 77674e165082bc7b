"""THE request pipeline. Every logical request, for every engine and auth method, goes through :meth:`Pipeline.handle`:

    sealed? → authenticate token → resolve mount (longest prefix) → match the backend's declared path → validate fields
    → existence check (create vs update) → ACL → audit request (fail closed) → backend handler
    → login MFA (a login matching a login-enforcement gets ``auth.mfa_requirement`` and no token; ``sys/mfa/validate``
      with its passcodes issues the token: :mod:`strongroom.core.mfa`)
    → token creation (logins) / lease registration (secrets) → Vault envelope
    → response wrapping (X-Vault-Wrap-TTL: the envelope goes into a one-use token's cubbyhole) → audit response
    → commit the request's writes (one storage transaction; any failure before it discards them)

Backends never authenticate, authorise, audit or register leases themselves. No mount or no declared path: the ACL
is asked first, so a caller it refuses gets 403, never a 404 that would reveal what exists. ``?help=1`` (the help
operation) stops after routing with the path's help and OpenAPI. Whatever the outcome, each request is timed once, on
its mount and operation, and counted by status in ``core.metrics`` (``sys/metrics``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.auth.token_fields import remote_addr_allowed
from strongroom.core import mfa, request_txn, wrapping
from strongroom.core.logical import (
    Auth,
    Caller,
    InvalidRequest,
    LogicalError,
    Operation,
    PermissionDenied,
    Request,
    Response,
    Sealed,
    Secret,
    UnsupportedPath,
)
from strongroom.core.tokens import SYSTEM_MAX_TTL, TokenEntry
from strongroom.framework.fields import FieldData

if TYPE_CHECKING:
    from strongroom.core.core import Core
    from strongroom.core.mounts import Route

log = logging.getLogger("strongroom.pipeline")


@dataclass(slots=True)
class Incoming:
    """A request as the API layer parsed it. ``token`` is the client's secret and goes no further than this module."""

    operation: Operation
    path: str
    data: dict[str, Any] = field(default_factory=dict)
    token: str = ""
    remote_addr: str = ""
    request_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    # set by the pipeline once mount and operation are known: the request's metrics key (core.metrics.route)
    metric_route: Any = None


@dataclass(slots=True)
class Outcome:
    status: int
    body: dict[str, Any] | bytes | None
    content_type: str = "application/json"


class AuditRefused(LogicalError):
    status = 500


class Pipeline:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def handle(self, inc: Incoming) -> Outcome:
        """Run the request (:meth:`_transact`) and count it in the core's metrics, whatever the outcome."""
        metrics = self.core.metrics
        started = metrics.request_started()
        status = 500
        try:
            outcome = await self._transact(inc)
            status = outcome.status
            return outcome
        except LogicalError as exc:
            status = exc.status
            raise
        finally:
            metrics.request_done(started, inc.metric_route, status)

    async def _transact(self, inc: Incoming) -> Outcome:
        """Handle one request inside its request transaction (:mod:`strongroom.core.request_txn`): what it changes
        is committed only after its audit response entry is recorded, and discarded otherwise."""
        # whatever any process committed before this request started is visible to it (change log, core/barrier.py)
        await self.core.barrier.sync()
        txn, scope = request_txn.begin()
        try:
            try:
                outcome = await self._handle(inc)
            except BaseException:
                # an error answer on record keeps what stands regardless of the handler (a limited-use token's use)
                if txn.response_recorded:
                    await self._commit(txn, inc)
                else:
                    await self._discard(txn, inc, "the request failed before its response was recorded")
                raise
            await self._commit(txn, inc)
            return outcome
        finally:
            request_txn.end(scope)

    async def _handle(self, inc: Incoming) -> Outcome:
        core = self.core
        if core.sealed:
            raise Sealed()
        if not core.serving:
            raise LogicalError("this node is a standby and cannot serve requests", status=503)
        wrap_ttl = wrapping.requested_ttl(inc.headers)

        matched = core.router.match(inc.path)
        backend_path = None
        params: dict[str, str] = {}
        rel = ""
        if matched is not None:
            route, rel = matched
            try:
                backend_path, params = route.backend.route(rel)
            except UnsupportedPath:
                backend_path = None
        await self._check_wrapping_token(inc, matched[0] if matched else None)

        unauthenticated = backend_path is not None and backend_path.unauthenticated
        token_entry: TokenEntry | None = None
        if not unauthenticated:
            token_entry = await core.tokens.lookup(inc.token) if inc.token else None
            if token_entry is not None and not await self._token_usable(token_entry, inc.remote_addr):
                token_entry = None
            if token_entry is None:
                await self._audit_denied(inc, matched[0] if matched else None, None, [])
                raise PermissionDenied("permission denied" if inc.token else "missing client token")

        is_help = inc.operation is Operation.HELP
        if (matched is None or backend_path is None or is_help) and token_entry is not None and not token_entry.is_root:
            # 403 before any routing error: a caller the ACL refuses must not learn which mounts and paths exist.
            # Help describes a path: unlike Vault (any token), only for a caller granted something there
            acl = await core.policies.acl_for(
                tuple(token_entry.policies) + tuple(await self._identity_policies(token_entry)), token_entry.entity_id
            )
            if (acl.capabilities(inc.path) == ["deny"]) if is_help else not acl.allow(inc.operation, inc.path).allowed:
                await self._audit_denied(inc, matched[0] if matched else None, token_entry, [])
                raise PermissionDenied()
        if matched is None:
            raise UnsupportedPath(f'no handler for route "{inc.path}". route entry not found.')
        route, rel = matched
        if is_help:
            from strongroom.core.system.path_openapi import help_outcome

            return await help_outcome(core, inc, route, backend_path, token_entry)
        if backend_path is None:
            raise UnsupportedPath(f"unsupported path: {inc.path}")
        backend = route.backend
        op = inc.operation
        if not backend.supports(backend_path, op) and not (
            op is Operation.UPDATE and backend.supports(backend_path, Operation.CREATE)
        ):
            raise LogicalError("unsupported operation", status=405)

        caller = _caller(token_entry)
        req = Request(
            operation=op,
            path=rel,
            data=inc.data,
            storage=backend.ctx.storage,
            mount_point=route.entry.route_path,
            mount_accessor=route.entry.accessor,
            mount_type=route.entry.type,
            caller=caller,
            remote_addr=inc.remote_addr,
            request_id=inc.request_id,
            headers=_safe_headers(inc.headers),
            query=inc.query,
            params=params,
            full_path=inc.path,
            client_token=inc.token
            if (route.entry.type == "token" and token_entry is not None) or inc.path in wrapping.TOKEN_PATHS
            else "",
        )
        # Input errors are reported only to a caller the ACL lets through: a denied caller learns nothing from them.
        fd_error: InvalidRequest | None = None
        try:
            fd = backend.field_data(backend_path, req, params)
        except InvalidRequest as exc:
            fd, fd_error = FieldData(backend_path.fields, {}, params), exc

        if op is Operation.UPDATE or op is Operation.CREATE:
            exists = await backend.exists(backend_path, req, fd)
            op = Operation.CREATE if exists is False else Operation.UPDATE
            req.operation = op
        login = backend.is_auth and backend_path.unauthenticated
        inc.metric_route = core.metrics.route(op, route.entry.route_path, login)

        identity_policies: list[str] = []
        if token_entry is not None:
            identity_policies = await self._identity_policies(token_entry)
            if not token_entry.is_root:
                acl = wrapping.acl_for(token_entry) or await core.policies.acl_for(
                    tuple(token_entry.policies) + tuple(identity_policies), token_entry.entity_id
                )
                decision = acl.allow(
                    op, inc.path, inc.data if op in _PARAM_OPS else None, backend_path.sudo, wrap_ttl=wrap_ttl or None
                )
                # internal/ui paths answer any valid token and filter by the caller's policies themselves
                if not decision.allowed and not backend_path.any_token:
                    await self._audit_denied(inc, route, token_entry, identity_policies, req)
                    raise PermissionDenied()

        ctx = self._audit_context(inc, req, route, token_entry, identity_policies)
        try:
            await core.audit.log_request(ctx)
        except Exception as exc:
            log.error("audit: could not record request %s: %s", inc.request_id, type(exc).__name__)
            raise AuditRefused("the request could not be recorded in the audit log, so it was refused") from None
        if fd_error is not None:
            await self._audit_response(ctx, None, "; ".join(fd_error.messages))
            raise fd_error

        last_use = False
        if token_entry is not None and token_entry.num_uses > 0:
            last_use = await core.tokens.use(token_entry)
        txn = request_txn.current()
        before_handler = txn.savepoint() if txn is not None else None
        try:
            resp = await backend.handle(backend_path, req, fd)
            if resp is not None:
                # only an auth method's unauthenticated login path may mint a token from an Auth it returns
                is_login = backend.is_auth and backend_path.unauthenticated
                await self._register(resp, req, route, token_entry, is_login)
        except LogicalError as exc:
            if txn is not None and before_handler is not None:
                # an error answer changes nothing: drop what the handler wrote before it failed
                await self._run_undo(txn.rollback_to(before_handler), inc.request_id, inc.path, "handler error")
            await self._audit_response(ctx, None, "; ".join(exc.messages) or type(exc).__name__)
            raise
        finally:
            if last_use and token_entry is not None:
                await core.tokens.revoke_tree(token_entry.hash)

        outcome = await self._wrap(self._envelope(resp, req, route), inc.path, resp, wrap_ttl)
        if resp is not None and resp.auth is not None:
            ctx.response_client_token = resp.auth.client_token
            ctx.response_accessor = resp.auth.accessor
        await self._audit_response(ctx, outcome.body if isinstance(outcome.body, dict) else None, "")
        return outcome

    # --- identity, tokens and leases ----------------------------------------------------------------------------

    async def _token_usable(self, entry: TokenEntry, remote_addr: str) -> bool:
        """A spent limited-use token, a token used outside its bound CIDRs, or one whose entity was disabled is
        refused like an unknown token (Vault's rules)."""
        if entry.num_uses < 0:
            return False
        if entry.bound_cidrs and not remote_addr_allowed(remote_addr, entry.bound_cidrs):
            return False
        return not entry.entity_id or await self.core.identity.entity_enabled(entry.entity_id)

    async def _identity_policies(self, entry: TokenEntry) -> list[str]:
        if not entry.entity_id or entry.no_identity_policies:
            return []
        return list(await self.core.identity.identity_policies(entry.entity_id))

    async def _register(
        self, resp: Response, req: Request, route: Route, parent: TokenEntry | None, is_login: bool
    ) -> None:
        if resp.auth is not None and not resp.auth.client_token and is_login:
            await self._login(resp.auth, req, route)
            if mfa.REQUIREMENT in resp.auth.internal_data:
                resp.warnings.append(mfa.PENDING_WARNING)
        elif resp.auth is not None and not resp.auth.client_token and _mfa_validated(resp.auth, req, route):
            await self._login_after_mfa(resp.auth, req)
        if resp.secret is not None and not resp.secret.lease_id:
            holder = parent.lease_holder if parent is not None else ""
            ttl, max_ttl = _lease_ttls(resp.secret.ttl, resp.secret.max_ttl, route.entry.config)
            if parent is not None and parent.is_batch:
                # nothing revokes a batch token's leases early, so none may outlive it (Vault's rule)
                ttl, max_ttl = min(ttl, parent.ttl_remaining()), min(max_ttl, parent.ttl_remaining())
            resp.secret.ttl, resp.secret.max_ttl = ttl, max_ttl
            try:
                resp.secret.lease_id = await self.core.expiration.register(
                    path=req.full_path, mount_path=route.entry.route_path, secret=resp.secret, token_hash=holder
                )
            except Exception:
                # an unregistered credential would never be revoked: take it back before failing the request
                await self._revoke_unregistered(resp, req, route)
                raise
            txn = request_txn.current()
            if txn is not None:
                # the lease is stored only with the request's commit: if that never happens, neither may the credential
                secret = resp.secret
                txn.on_discard(lambda: self._take_back(secret, req, route))

    async def _revoke_unregistered(self, resp: Response, req: Request, route: Route) -> bool:
        """Revoke a credential that has no stored lease; True when the backend confirmed it."""
        assert resp.secret is not None
        stype = route.backend.secret_types.get(resp.secret.lease_type)
        if stype is None:
            return False
        from strongroom.core.core import secret_request

        revoke_req = secret_request(Operation.REVOKE, route.backend, route.entry, resp.secret, req.full_path)
        try:
            await stype.revoke(revoke_req)
        except Exception as exc:
            log.error(
                "could not take back an unregistered %s credential at %s: %s",
                resp.secret.lease_type,
                req.full_path,
                type(exc).__name__,
            )
            return False
        return True

    async def _take_back(self, secret: Secret, req: Request, route: Route) -> None:
        """Undo a credential whose request was discarded, through its revocation path, and put that on record."""
        revoked = await self._revoke_unregistered(Response(secret=secret), req, route)
        await self._record_event(
            req.request_id,
            {
                "type": "credential-taken-back",
                "path": req.full_path,
                "lease_type": secret.lease_type,
                "outcome": "revoked" if revoked else "revocation-failed",
            },
        )

    # --- the request transaction: commit after the response entry, or discard -----------------------------------

    async def _commit(self, txn: request_txn.RequestTxn, inc: Incoming) -> None:
        writes = txn.close_for_commit()
        try:
            if writes:
                await self.core.barrier.transaction(writes, direct=True, checks=txn.checks)
        except Exception as exc:
            log.error("could not commit request %s: %s", inc.request_id, type(exc).__name__)
            await self._run_undo(txn.discard(), inc.request_id, inc.path, "commit failed")
            raise LogicalError("the change could not be stored, so it was not applied", status=500) from None
        await txn.finish_commit()

    async def _discard(self, txn: request_txn.RequestTxn, inc: Incoming, reason: str) -> None:
        pending = len(txn.writes)
        await self._run_undo(txn.discard(), inc.request_id, inc.path, reason)
        if pending:
            log.warning("request %s discarded %d uncommitted change(s): %s", inc.request_id, pending, reason)
            await self._record_event(
                inc.request_id, {"type": "request-discarded", "path": inc.path, "changes": pending, "reason": reason}
            )

    async def _run_undo(
        self, undo: list[Callable[[], Awaitable[None]]], request_id: str, path: str, reason: str
    ) -> None:
        for step in undo:
            try:
                await step()
            except Exception as exc:  # one failed undo must not stop the others
                log.error("undo for request %s at %s (%s) failed: %s", request_id, path, reason, type(exc).__name__)

    async def _record_event(self, request_id: str, event: dict[str, Any]) -> None:
        """Put an undo on record; the device that just failed may still be down, so a failure is logged, not raised."""
        try:
            await self.core.audit.log_event("core", event, request_id)
        except Exception as exc:
            log.error("audit: could not record %s for request %s: %s", event["type"], request_id, type(exc).__name__)

    async def _login(self, auth: Auth, req: Request, route: Route) -> None:
        """An auth method vouched for a caller: resolve its entity and issue a token."""
        core = self.core
        entity_id = auth.entity_id
        if auth.alias is not None:
            entity = await core.identity.entity_for_login(
                route.entry.accessor, route.entry.type, auth.alias, list(auth.group_aliases)
            )
            entity_id = entity.id
        # login MFA: a login an enforcement matches waits for sys/mfa/validate instead of getting a token
        requirement = await mfa.begin_login(core, auth, entity_id, route.entry, req.full_path)
        if requirement is not None:
            single_phase = mfa.header_payload(req.headers.get(mfa.HEADER, ""))
            if not single_phase:
                auth.internal_data = {mfa.REQUIREMENT: requirement}
                return
            # X-Vault-MFA on the login itself (Vault's single-phase login): the same checks, then the token
            await mfa.validate(core, requirement["mfa_request_id"], single_phase)
        await self._issue_token(auth, entity_id, req.full_path, route)

    async def _login_after_mfa(self, auth: Auth, req: Request) -> None:
        """``sys/mfa/validate`` accepted the passcodes of a pending login: issue the token on the login's own mount."""
        accessor, login_path = auth.internal_data.pop(mfa.VALIDATED)
        route = self.core.router.by_accessor(accessor)
        if route is None:
            raise PermissionDenied("the auth method of this login no longer exists")
        await self._issue_token(auth, auth.entity_id, login_path, route)

    async def _issue_token(self, auth: Auth, entity_id: str, login_path: str, route: Route) -> None:
        core = self.core
        policies = sorted(set(auth.policies) | ({"default"} if not auth.no_default_policy else set()))
        policies = [p for p in policies if p != "root"]  # no auth method may mint root
        default_ttl, max_ttl = _mount_ttls(route.entry.config)
        ttl = auth.ttl or default_ttl
        cap = min(x for x in (auth.max_ttl or max_ttl, max_ttl) if x)
        ttl = min(ttl, cap)
        token, entry = await core.tokens.create(
            policies=policies,
            parent=None,
            ttl=ttl,
            explicit_max_ttl=auth.explicit_max_ttl,
            period=auth.period,
            num_uses=auth.num_uses,
            meta=auth.metadata,
            display_name=_display(route.entry.path, auth.display_name),
            path=login_path,
            entity_id=entity_id,
            renewable=auth.renewable,
            mount_accessor=route.entry.accessor,
            internal_data=auth.internal_data,
            max_ttl=cap,
            bound_cidrs=auth.bound_cidrs,
            token_type=auth.token_type,
        )
        _fill_auth(auth, token, entry)
        auth.identity_policies = await self._identity_policies(entry)

    async def _check_wrapping_token(self, inc: Incoming, route: Route | None) -> None:
        """unwrap/lookup/rewrap with a spent, expired or foreign wrapping token: 400, and recorded, since a wrapping
        token someone else already used is how an intercepted secret shows up."""
        try:
            await wrapping.check_wrapping_token(self.core, inc.path, inc.data, inc.token)
        except InvalidRequest as exc:
            await self._audit_denied(inc, route, None, [], error="; ".join(exc.messages))
            raise

    async def _wrap(self, outcome: Outcome, path: str, resp: Response | None, wrap_ttl: int) -> Outcome:
        """Response wrapping: a successful answer goes into a one-use token's cubbyhole and the client (and the
        audit trail) get only ``wrap_info``. Errors and empty answers are never wrapped, as in Vault."""
        if not wrapping.wants_wrapping(path, wrap_ttl) or outcome.status != 200 or not isinstance(outcome.body, dict):
            return outcome
        return Outcome(200, await wrapping.wrap_envelope(self.core, outcome.body, path=path, ttl=wrap_ttl, resp=resp))

    # --- audit --------------------------------------------------------------------------------------------------

    async def _audit_denied(
        self,
        inc: Incoming,
        route: Route | None,
        token: TokenEntry | None,
        identity_policies: list[str],
        req: Request | None = None,
        error: str = "permission denied",
    ) -> None:
        """Record a refused request, as Vault does, so denied attempts are attributable. A failure to record it
        changes nothing: the request is refused either way."""
        from strongroom.audit import AuditContext

        if req is not None and route is not None:
            ctx = self._audit_context(inc, req, route, token, identity_policies)
        else:
            ctx = AuditContext(
                request_id=inc.request_id,
                operation=inc.operation.value,
                path=inc.path,
                mount_point=route.entry.route_path if route else "",
                mount_type=route.entry.type if route else "",
                mount_accessor=route.entry.accessor if route else "",
                remote_addr=inc.remote_addr,
                data=inc.data,
                client_token=inc.token,
            )
        try:
            await self.core.audit.log_request(ctx)
            await self.core.audit.log_response(ctx, None, error)
        except Exception as exc:
            log.error("audit: could not record denied request %s: %s", inc.request_id, type(exc).__name__)

    def _audit_context(
        self, inc: Incoming, req: Request, route: Route, token: TokenEntry | None, identity_policies: list[str]
    ) -> Any:
        from strongroom.audit import AuditContext

        return AuditContext(
            request_id=inc.request_id,
            operation=req.operation.value,
            path=inc.path,
            mount_point=route.entry.route_path,
            mount_type=route.entry.type,
            mount_accessor=route.entry.accessor,
            remote_addr=inc.remote_addr,
            data=inc.data,
            client_token=inc.token if token is not None else "",
            accessor=token.accessor if token else "",
            display_name=token.display_name if token else "",
            policies=sorted(set(token.policies) | set(identity_policies)) if token else [],
            token_policies=list(token.policies) if token else [],
            identity_policies=identity_policies,
            metadata=dict(token.meta) if token else {},
            entity_id=token.entity_id if token else "",
            token_type=token.type if token else "",
            ttl=token.ttl if token else 0,
            issue_time=token.issue_time if token else 0.0,
        )

    async def _audit_response(self, ctx: Any, body: dict[str, Any] | None, error: str) -> None:
        try:
            await self.core.audit.log_response(ctx, body, error)
        except Exception as exc:  # nothing is committed: the request transaction is discarded
            log.error("audit: could not record response %s: %s", ctx.request_id, type(exc).__name__)
            raise AuditRefused(
                "the response could not be recorded in the audit log, so the request was refused and nothing changed"
            ) from None
        txn = request_txn.current()
        if txn is not None:
            txn.response_recorded = True

    # --- envelope -----------------------------------------------------------------------------------------------

    def _envelope(self, resp: Response | None, req: Request, route: Route) -> Outcome:
        if resp is None:
            return Outcome(204, None)
        if resp.raw_body is not None:
            return Outcome(resp.status or 200, resp.raw_body, resp.raw_content_type)
        if resp.data is None and resp.auth is None and resp.secret is None and not resp.warnings:
            return Outcome(resp.status or 204, None)
        body: dict[str, Any] = {
            "request_id": req.request_id,
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": resp.data,
            "wrap_info": None,
            "warnings": resp.warnings or None,
            "auth": None,
            "mount_type": route.entry.type,
        }
        if resp.secret is not None:
            body["lease_id"] = resp.secret.lease_id
            body["renewable"] = resp.secret.renewable
            body["lease_duration"] = resp.secret.ttl
        if resp.auth is not None:
            body["auth"] = auth_json(resp.auth)
        if resp.inject_top_level and resp.data:
            for k, v in resp.data.items():
                body.setdefault(k, v)
        return Outcome(resp.status or 200, body)


_PARAM_OPS = (Operation.READ, Operation.CREATE, Operation.UPDATE, Operation.PATCH)


def _safe_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in ("x-vault-token", "authorization", "cookie")}


def _caller(entry: TokenEntry | None) -> Caller:
    if entry is None:
        return Caller()
    return Caller(
        token_accessor=entry.accessor,
        token_hash=entry.hash,
        display_name=entry.display_name,
        entity_id=entry.entity_id,
        policies=tuple(entry.policies),
        metadata=dict(entry.meta),
        is_root=entry.is_root,
    )


def _mount_ttls(config: dict[str, Any]) -> tuple[int, int]:
    max_ttl = int(config.get("max_lease_ttl") or 0) or SYSTEM_MAX_TTL
    default = int(config.get("default_lease_ttl") or 0) or SYSTEM_MAX_TTL
    return min(default, max_ttl), max_ttl


def _lease_ttls(ttl: int, max_ttl: int, config: dict[str, Any]) -> tuple[int, int]:
    default, mount_max = _mount_ttls(config)
    max_ttl = min(max_ttl or mount_max, mount_max)
    ttl = min(ttl or default, max_ttl)
    return ttl, max_ttl


def _display(mount_path: str, name: str) -> str:
    prefix = mount_path.rstrip("/").replace("/", "-")
    return f"{prefix}-{name}" if name else prefix


def _fill_auth(auth: Auth, token: str, entry: TokenEntry) -> None:
    auth.client_token = token
    auth.accessor = entry.accessor
    auth.policies = list(entry.policies)
    auth.token_policies = list(entry.policies)
    auth.entity_id = entry.entity_id
    auth.ttl = entry.ttl_remaining() if entry.expire_time else 0
    auth.renewable = entry.renewable
    auth.num_uses = entry.num_uses
    auth.orphan = entry.orphan
    auth.metadata = dict(entry.meta)


def _mfa_validated(auth: Auth, req: Request, route: Route) -> bool:
    """Only the sys backend's ``sys/mfa/validate`` may hand back a pending login for its token."""
    return route.entry.type == "system" and req.full_path == mfa.VALIDATE_PATH and mfa.VALIDATED in auth.internal_data


def auth_json(auth: Auth) -> dict[str, Any]:
    requirement = auth.internal_data.get(mfa.REQUIREMENT) if not auth.client_token else None
    if requirement is not None:
        # Vault's shape for a login waiting for its second factor: nothing about the token it would get
        return {
            "client_token": "",
            "accessor": "",
            "policies": None,
            "token_policies": None,
            "identity_policies": None,
            "metadata": None,
            "orphan": False,
            "entity_id": "",
            "lease_duration": 0,
            "renewable": False,
            "mfa_requirement": requirement,
            "num_uses": 0,
        }
    out: dict[str, Any] = {
        "client_token": auth.client_token,
        "accessor": auth.accessor,
        "policies": sorted(set(auth.token_policies or auth.policies) | set(auth.identity_policies)),
        "token_policies": auth.token_policies or auth.policies,
        "metadata": auth.metadata or None,
        "lease_duration": auth.ttl,
        "renewable": auth.renewable,
        "entity_id": auth.entity_id,
        "token_type": auth.token_type,
        "orphan": auth.orphan,
        "mfa_requirement": None,
        "num_uses": auth.num_uses,
    }
    if auth.identity_policies:
        out["identity_policies"] = auth.identity_policies
    return out


def new_request_id() -> str:
    return crypto.new_uuid()


def now() -> float:
    return time.time()


__all__ = ["Incoming", "Outcome", "Pipeline", "auth_json", "InvalidRequest"]
