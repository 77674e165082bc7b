"""THE request pipeline. Every logical request, for every engine and auth method, goes through :meth:`Pipeline.handle`:

    sealed? → authenticate token → resolve mount (longest prefix) → match the backend's declared path → validate fields
    → existence check (create vs update) → ACL → audit request (fail closed) → backend handler
    → token creation (logins) / lease registration (secrets) → audit response → Vault envelope

Backends never authenticate, authorise, audit or register leases themselves.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.auth.token_fields import remote_addr_allowed
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
        core = self.core
        if core.sealed:
            raise Sealed()
        if not core.serving:
            raise LogicalError("this node is a standby and cannot serve requests", status=503)

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

        unauthenticated = backend_path is not None and backend_path.unauthenticated
        token_entry: TokenEntry | None = None
        if not unauthenticated:
            token_entry = await core.tokens.lookup(inc.token) if inc.token else None
            if token_entry is not None and not await self._token_usable(token_entry, inc.remote_addr):
                token_entry = None
            if token_entry is None:
                await self._audit_denied(inc, matched[0] if matched else None, None, [])
                raise PermissionDenied("permission denied" if inc.token else "missing client token")

        if matched is None:
            raise UnsupportedPath(f'no handler for route "{inc.path}". route entry not found.')
        route, rel = matched
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
            client_token=inc.token if route.entry.type == "token" and token_entry is not None else "",
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

        identity_policies: list[str] = []
        if token_entry is not None:
            identity_policies = await self._identity_policies(token_entry)
            if not token_entry.is_root:
                acl = await core.policies.acl_for(
                    tuple(token_entry.policies) + tuple(identity_policies), token_entry.entity_id
                )
                decision = acl.allow(op, inc.path, inc.data if op in _PARAM_OPS else None, backend_path.sudo)
                if not decision.allowed:
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
        try:
            resp = await backend.handle(backend_path, req, fd)
            if resp is not None:
                # only an auth method's unauthenticated login path may mint a token from an Auth it returns
                is_login = backend.is_auth and backend_path.unauthenticated
                await self._register(resp, req, route, token_entry, is_login)
        except LogicalError as exc:
            await self._audit_response(ctx, None, "; ".join(exc.messages) or type(exc).__name__)
            raise
        finally:
            if last_use and token_entry is not None:
                await core.tokens.revoke_tree(token_entry.hash)

        outcome = self._envelope(resp, req, route)
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
        if resp.secret is not None and not resp.secret.lease_id:
            holder = parent.hash if parent is not None else ""
            ttl, max_ttl = _lease_ttls(resp.secret.ttl, resp.secret.max_ttl, route.entry.config)
            resp.secret.ttl, resp.secret.max_ttl = ttl, max_ttl
            try:
                resp.secret.lease_id = await self.core.expiration.register(
                    path=req.full_path, mount_path=route.entry.route_path, secret=resp.secret, token_hash=holder
                )
            except Exception:
                # an unregistered credential would never be revoked: take it back before failing the request
                await self._revoke_unregistered(resp, req, route)
                raise

    async def _revoke_unregistered(self, resp: Response, req: Request, route: Route) -> None:
        assert resp.secret is not None
        stype = route.backend.secret_types.get(resp.secret.lease_type)
        if stype is None:
            return
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

    async def _login(self, auth: Auth, req: Request, route: Route) -> None:
        """An auth method vouched for a caller: resolve its entity and issue a token."""
        core = self.core
        entity_id = auth.entity_id
        if auth.alias is not None:
            entity = await core.identity.entity_for_login(
                route.entry.accessor, route.entry.type, auth.alias, list(auth.group_aliases)
            )
            entity_id = entity.id
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
            path=req.full_path,
            entity_id=entity_id,
            renewable=auth.renewable,
            mount_accessor=route.entry.accessor,
            internal_data=auth.internal_data,
            max_ttl=cap,
            bound_cidrs=auth.bound_cidrs,
        )
        _fill_auth(auth, token, entry)
        auth.identity_policies = await self._identity_policies(entry)

    # --- audit --------------------------------------------------------------------------------------------------

    async def _audit_denied(
        self,
        inc: Incoming,
        route: Route | None,
        token: TokenEntry | None,
        identity_policies: list[str],
        req: Request | None = None,
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
            await self.core.audit.log_response(ctx, None, "permission denied")
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
        except Exception as exc:  # the change is done; the failure itself must be loud
            log.error("audit: could not record response %s: %s", ctx.request_id, type(exc).__name__)
            raise AuditRefused("the response could not be recorded in the audit log") from None

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


def auth_json(auth: Auth) -> dict[str, Any]:
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
