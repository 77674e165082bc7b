"""``auth/token/``: create, look up, renew and revoke tokens, and token roles (Vault's token store API)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from strongroom.auth.token_fields import TOKEN_TYPES
from strongroom.core.logical import Auth, InvalidRequest, NotFound, Operation, PermissionDenied, Request, Response
from strongroom.core.tokens import TokenEntry
from strongroom.framework import Backend, BackendContext, Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.core.core import Core


def _rfc3339(ts: float) -> str | None:
    if not ts:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e6):06d}Z"


def lookup_data(entry: TokenEntry, token_id: str = "") -> dict[str, Any]:
    """Vault's token lookup shape: ``role``, ``period`` and ``bound_cidrs`` appear only when set; a batch token has
    no lease, so no ``renewable``/``issue_time`` beyond what it carries."""
    data: dict[str, Any] = {
        "accessor": entry.accessor,
        "creation_time": int(entry.creation_time),
        "creation_ttl": entry.ttl,
        "display_name": entry.display_name,
        "entity_id": entry.entity_id,
        "expire_time": _rfc3339(entry.expire_time),
        "explicit_max_ttl": entry.explicit_max_ttl,
        "id": token_id,
        "issue_time": _rfc3339(entry.issue_time),
        "meta": entry.meta or None,
        "num_uses": max(entry.num_uses, 0),
        "orphan": entry.orphan,
        "path": entry.path,
        "policies": entry.policies,
        "renewable": entry.renewable,
        "ttl": entry.ttl_remaining(),
        "type": entry.type,
    }
    if entry.role_name:
        data["role"] = entry.role_name
    if entry.period:
        data["period"] = entry.period
    if entry.bound_cidrs:
        data["bound_cidrs"] = list(entry.bound_cidrs)
    return data


_CREATE_FIELDS = {
    "role_name": Field(FieldType.STRING, "Name of the role to create the token against.", in_path=True),
    "id": Field(FieldType.STRING, "The token value; root only."),
    "policies": Field(FieldType.COMMA_STRING_LIST, "Policies of the token."),
    "meta": Field(FieldType.STRING_MAP, "Metadata of the token."),
    "no_parent": Field(FieldType.BOOL, "Create an orphan token (root or sudo).", default=False),
    "no_default_policy": Field(FieldType.BOOL, "Do not attach the default policy.", default=False),
    "renewable": Field(FieldType.BOOL, "Whether the token may be renewed.", default=True),
    "lease": Field(FieldType.DURATION, "Deprecated: use ttl."),
    "ttl": Field(FieldType.DURATION, "TTL of the token."),
    "type": Field(FieldType.STRING, "Token type: service or batch.", default=""),
    "explicit_max_ttl": Field(FieldType.DURATION, "Hard cap on the token's life.", default=0),
    "display_name": Field(FieldType.STRING, "Display name of the token.", default="token"),
    "num_uses": Field(FieldType.INT, "Number of uses; 0 is unlimited.", default=0),
    "period": Field(FieldType.DURATION, "Renewal period of a periodic token (root or sudo).", default=0),
    "entity_alias": Field(FieldType.STRING, "Name of the entity alias to associate (role required)."),
}
_ROLE_FIELDS = {
    "role_name": Field(FieldType.STRING, "Name of the role.", required=True, in_path=True),
    "allowed_policies": Field(FieldType.COMMA_STRING_LIST, "Policies tokens of this role may have.", default=[]),
    "disallowed_policies": Field(FieldType.COMMA_STRING_LIST, "Policies tokens of this role may not have.", default=[]),
    "orphan": Field(FieldType.BOOL, "Tokens of this role are orphans.", default=False),
    "renewable": Field(FieldType.BOOL, "Tokens of this role may be renewed.", default=True),
    "path_suffix": Field(FieldType.STRING, "Suffix of the token's path.", default=""),
    "token_period": Field(FieldType.DURATION, "Period of tokens of this role.", default=0),
    "period": Field(FieldType.DURATION, "Deprecated: token_period.", default=0),
    "token_explicit_max_ttl": Field(FieldType.DURATION, "Explicit max TTL of tokens of this role.", default=0),
    "explicit_max_ttl": Field(FieldType.DURATION, "Deprecated: token_explicit_max_ttl.", default=0),
    "token_type": Field(
        FieldType.STRING, "service, batch, default-service, default-batch or default.", default="default-service"
    ),
    "allowed_entity_aliases": Field(FieldType.COMMA_STRING_LIST, "Entity aliases tokens may use.", default=[]),
    "token_no_default_policy": Field(FieldType.BOOL, "Do not attach default.", default=False),
    "token_num_uses": Field(FieldType.INT, "Uses of tokens of this role.", default=0),
    "token_ttl": Field(FieldType.DURATION, "TTL of tokens of this role.", default=0),
    "token_max_ttl": Field(FieldType.DURATION, "Max TTL of tokens of this role.", default=0),
}


class TokenBackend(Backend):
    type = "token"
    is_auth = True

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.core: Core = ctx.services["core"]
        token_f = {
            "token": Field(FieldType.STRING, "The token."),
            "increment": Field(FieldType.DURATION, "TTL increment."),
        }
        acc_f = {
            "accessor": Field(FieldType.STRING, "The token's accessor."),
            "increment": Field(FieldType.DURATION, "TTL increment."),
        }
        inc_f = {"increment": Field(FieldType.DURATION, "TTL increment.", default=0)}
        self.paths = [
            Path(
                r"create-orphan",
                {Operation.UPDATE: self.create_orphan},
                _CREATE_FIELDS,
                summary="Create an orphan token.",
            ),
            Path(
                rf"create/{generic_name('role_name')}",
                {Operation.UPDATE: self.create},
                _CREATE_FIELDS,
                summary="Create a token against a role.",
            ),
            Path(r"create", {Operation.UPDATE: self.create}, _CREATE_FIELDS, summary="Create a token."),
            Path(
                r"lookup",
                {Operation.UPDATE: self.lookup, Operation.READ: self.lookup},
                token_f,
                summary="Look up a token.",
            ),
            Path(
                r"lookup-self",
                {Operation.READ: self.lookup_self, Operation.UPDATE: self.lookup_self},
                token_f,
                summary="Look up the caller's token.",
            ),
            Path(r"lookup-accessor", {Operation.UPDATE: self.lookup_accessor}, acc_f, summary="Look up by accessor."),
            Path(r"renew", {Operation.UPDATE: self.renew}, token_f, summary="Renew a token."),
            Path(r"renew-self", {Operation.UPDATE: self.renew_self}, inc_f, summary="Renew the caller's token."),
            Path(r"renew-accessor", {Operation.UPDATE: self.renew_accessor}, acc_f, summary="Renew by accessor."),
            Path(r"revoke", {Operation.UPDATE: self.revoke}, token_f, summary="Revoke a token and its children."),
            Path(r"revoke-self", {Operation.UPDATE: self.revoke_self}, summary="Revoke the caller's token."),
            Path(r"revoke-accessor", {Operation.UPDATE: self.revoke_accessor}, acc_f, summary="Revoke by accessor."),
            Path(
                r"revoke-orphan",
                {Operation.UPDATE: self.revoke_orphan},
                token_f,
                sudo=True,
                summary="Revoke a token; its children become orphans.",
            ),
            Path(r"accessors/?", {Operation.LIST: self.list_accessors}, sudo=True, summary="List token accessors."),
            Path(r"roles/?", {Operation.LIST: self.list_roles}, summary="List token roles."),
            Path(
                rf"roles/{generic_name('role_name')}",
                {Operation.READ: self.read_role, Operation.UPDATE: self.write_role, Operation.DELETE: self.delete_role},
                _ROLE_FIELDS,
                existence_check=self.role_exists,
                summary="Manage a token role.",
            ),
            Path(r"tidy", {Operation.UPDATE: self.tidy}, summary="Clean up dangling token index entries."),
        ]

    # --- create -------------------------------------------------------------------------------------------------

    async def _caller_entry(self, req: Request) -> TokenEntry:
        # a batch token exists only as the secret the caller sent, so look it up by that when we have it
        if req.client_token:
            entry = await self.core.tokens.lookup(req.client_token)
        else:
            entry = await self.core.tokens.lookup_hash(req.caller.token_hash)
        if entry is None:
            raise PermissionDenied()
        return entry

    async def _has_sudo(self, req: Request, entry: TokenEntry) -> bool:
        if entry.is_root:
            return True
        identity = await self.core.pipeline._identity_policies(entry)
        acl = await self.core.policies.acl_for(tuple(entry.policies) + tuple(identity), entry.entity_id)
        return "sudo" in acl.capabilities(req.full_path)

    async def create_orphan(self, req: Request, fd: FieldData) -> Response:
        return await self._create(req, fd, orphan=True)

    async def create(self, req: Request, fd: FieldData) -> Response:
        return await self._create(req, fd, orphan=False)

    async def _create(self, req: Request, fd: FieldData, orphan: bool) -> Response:
        parent = await self._caller_entry(req)
        if parent.is_batch:
            raise InvalidRequest("batch tokens cannot create more tokens")
        sudo = await self._has_sudo(req, parent)
        role: dict[str, Any] | None = None
        role_name = fd.get("role_name") or ""
        if role_name:
            role = await self.ctx.storage.get_json(f"roles/{role_name}")
            if role is None:
                raise InvalidRequest(f"unknown role {role_name}")
        token_type = _token_type(fd, role)
        if fd.get("id"):
            if not parent.is_root:
                raise InvalidRequest("root or sudo privileges required to specify token id")
            tid: str = fd.get("id")
            if "." in tid or tid.startswith(("hvs.", "s.")):
                raise InvalidRequest("custom token ID cannot have the 'hvs.' or 's.' prefix or contain '.'")
        # create-orphan needs only update on its path (as in Vault); no_parent on create needs root or sudo
        no_parent = fd.get("no_parent")
        if no_parent and not sudo:
            raise InvalidRequest("root or sudo privileges required to create orphan token")
        if fd.get("num_uses") < 0:
            raise InvalidRequest("number of uses cannot be negative")
        period = fd.get("period")
        if period and not sudo:
            raise InvalidRequest("root or sudo privileges required to create periodic token")

        policies = [p.lower() for p in (fd.get("policies") or [])]
        inherited = not fd.has("policies")
        if role is not None:
            allowed = role["allowed_policies"]
            disallowed = set(role["disallowed_policies"])
            if inherited:
                policies = list(allowed) if allowed else [p for p in parent.policies if p != "root"]
            bad = [p for p in policies if p in disallowed or (allowed and p not in allowed and p != "default")]
            if bad:
                raise InvalidRequest(f"token policies ({sorted(bad)}) must be subset of the role's allowed policies")
            period = period or role["token_period"]
            orphan = orphan or role["orphan"]
        elif inherited:
            policies = list(parent.policies)
        # Without an allow-list a role limits nothing by itself: the caller's own policies are the ceiling (Vault).
        if not parent.is_root and (role is None or not role["allowed_policies"]):
            extra = set(policies) - set(parent.policies) - {"default"}
            if extra:
                raise InvalidRequest("child policies must be subset of parent")
        if "root" in policies and not parent.is_root:
            raise PermissionDenied("root tokens may only be created by root tokens")
        no_default = fd.get("no_default_policy") or (role is not None and role["token_no_default_policy"])
        if not no_default and "root" not in policies and "default" not in policies:
            policies.append("default")
        if no_default and "default" in policies and inherited:
            policies.remove("default")

        warnings = []
        for p in policies:
            if p not in ("root", "default") and await self.core.policies.get(p) is None:
                warnings.append(f'Policy "{p}" does not exist')
        mount_default, mount_max = _ttls(self.core, req.mount_point)
        ttl = fd.get("ttl") or fd.get("lease") or (role["token_ttl"] if role else 0)
        explicit = fd.get("explicit_max_ttl") or (role["token_explicit_max_ttl"] if role else 0)
        max_ttl = min(x for x in ((role["token_max_ttl"] if role else 0) or mount_max, mount_max) if x)
        token, entry = await self.core.tokens.create(
            policies=policies,
            parent=None if (orphan or no_parent) else parent,
            ttl=ttl,
            explicit_max_ttl=explicit,
            period=period,
            num_uses=fd.get("num_uses") or (role["token_num_uses"] if role else 0),
            meta=fd.get("meta"),
            display_name=_display_name(fd.get("display_name")),
            path=req.full_path,
            entity_id=parent.entity_id if role is None else "",
            role_name=role_name,
            renewable=fd.get("renewable") and (role is None or role["renewable"]),
            token_id=fd.get("id") or "",
            default_ttl=mount_default,
            max_ttl=max_ttl,
            token_type=token_type,
        )
        return Response(auth=_auth_for(token, entry), warnings=warnings)

    # --- lookup -------------------------------------------------------------------------------------------------

    async def lookup(self, req: Request, fd: FieldData) -> Response:
        token = fd.get("token") or ""
        if not token:
            return await self.lookup_self(req, fd)
        entry = await self.core.tokens.lookup(token)
        if entry is None:
            raise PermissionDenied("bad token")  # Vault's answer: 403, so a lookup cannot probe for tokens
        return Response(data=lookup_data(entry, token))

    async def lookup_self(self, req: Request, fd: FieldData) -> Response:
        entry = await self._caller_entry(req)
        return Response(data=lookup_data(entry, req.client_token))

    async def lookup_accessor(self, req: Request, fd: FieldData) -> Response:
        entry = await self._by_accessor(fd)
        return Response(data=lookup_data(entry, ""))

    async def _by_accessor(self, fd: FieldData) -> TokenEntry:
        accessor = fd.get("accessor") or ""
        if not accessor:
            raise InvalidRequest("missing accessor")
        entry = await self.core.tokens.lookup_accessor(accessor)
        if entry is None:
            raise InvalidRequest("invalid accessor")
        return entry

    # --- renew --------------------------------------------------------------------------------------------------

    async def _renew(self, req: Request, entry: TokenEntry, increment: int) -> Response:
        if entry.mount_accessor:
            route = self.core.router.by_accessor(entry.mount_accessor)
            if route is not None and route.backend is not self:
                renew_req = Request(
                    operation=Operation.RENEW,
                    path="login",
                    storage=route.backend.ctx.storage,
                    mount_point=route.entry.route_path,
                    mount_accessor=route.entry.accessor,
                    mount_type=route.entry.type,
                    caller=req.caller,
                    auth=Auth(
                        metadata=dict(entry.meta),
                        internal_data=dict(entry.internal_data),
                        policies=list(entry.policies),
                    ),
                )
                renewed = await route.backend.auth_renew(renew_req)
                if renewed is not None and renewed.auth is not None:
                    # the auth method re-read its role: its current TTLs bound this renewal
                    increment = increment or renewed.auth.ttl
                    if renewed.auth.max_ttl:
                        entry.max_ttl = min(entry.max_ttl or renewed.auth.max_ttl, renewed.auth.max_ttl)
        _, mount_max = _ttls(self.core, req.mount_point)
        entry = await self.core.tokens.renew(entry, increment, mount_max)
        return Response(auth=_auth_for("", entry))

    async def renew(self, req: Request, fd: FieldData) -> Response:
        token = fd.get("token") or ""
        if not token:
            raise InvalidRequest("missing token")
        entry = await self.core.tokens.lookup(token)
        if entry is None:
            raise InvalidRequest("invalid token")
        resp = await self._renew(req, entry, fd.get("increment") or 0)
        assert resp.auth is not None
        resp.auth.client_token = token
        return resp

    async def renew_self(self, req: Request, fd: FieldData) -> Response:
        resp = await self._renew(req, await self._caller_entry(req), fd.get("increment") or 0)
        assert resp.auth is not None
        resp.auth.client_token = req.client_token
        return resp

    async def renew_accessor(self, req: Request, fd: FieldData) -> Response:
        resp = await self._renew(req, await self._by_accessor(fd), fd.get("increment") or 0)
        assert resp.auth is not None
        resp.auth.client_token = ""
        return resp

    # --- revoke -------------------------------------------------------------------------------------------------

    async def revoke(self, req: Request, fd: FieldData) -> None:
        token = fd.get("token") or ""
        if not token:
            raise InvalidRequest("missing token")
        entry = await self.core.tokens.lookup(token)
        if entry is not None:
            _revocable(entry)
            await self.core.tokens.revoke_tree(entry.hash)

    async def revoke_self(self, req: Request, fd: FieldData) -> None:
        _revocable(await self._caller_entry(req))
        await self.core.tokens.revoke_tree(req.caller.token_hash)

    async def revoke_accessor(self, req: Request, fd: FieldData) -> None:
        entry = await self._by_accessor(fd)
        await self.core.tokens.revoke_tree(entry.hash)

    async def revoke_orphan(self, req: Request, fd: FieldData) -> None:
        token = fd.get("token") or ""
        if not token:
            raise InvalidRequest("missing token")
        entry = await self.core.tokens.lookup(token)
        if entry is None:
            raise InvalidRequest("token to revoke not found")
        _revocable(entry)
        await self.core.tokens.revoke_orphan(entry.hash)

    async def list_accessors(self, req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await self.core.tokens.list_accessors())

    async def tidy(self, req: Request, fd: FieldData) -> Response:
        removed = await self.core.tokens.tidy()
        return Response(data={"removed_index_entries": removed}, warnings=["Tidy operation finished."])

    # --- roles --------------------------------------------------------------------------------------------------

    async def role_exists(self, req: Request, fd: FieldData) -> bool:
        return await self.ctx.storage.get(f"roles/{fd.get('role_name')}") is not None

    async def list_roles(self, req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await self.ctx.storage.list_all("roles/"))

    async def read_role(self, req: Request, fd: FieldData) -> Response:
        role = await self.ctx.storage.get_json(f"roles/{fd.get('role_name')}")
        if role is None:
            raise NotFound()
        return Response(data=role)

    async def write_role(self, req: Request, fd: FieldData) -> None:
        name = fd.get("role_name")
        current = await self.ctx.storage.get_json(f"roles/{name}") or {}
        role: dict[str, Any] = {"name": name}
        for key in _ROLE_FIELDS:
            if key == "role_name":
                continue
            role[key] = fd.get(key) if fd.has(key) else current.get(key, fd.get(key))
        role["token_period"] = role["token_period"] or role.pop("period", 0)
        role["token_explicit_max_ttl"] = role["token_explicit_max_ttl"] or role.pop("explicit_max_ttl", 0)
        role.pop("period", None)
        role.pop("explicit_max_ttl", None)
        kind = (role["token_type"] or "default-service").lower()
        kind = "default-service" if kind == "default" else kind  # Vault stores a token role's "default" so
        if kind not in TOKEN_TYPES:
            raise InvalidRequest("invalid 'token_type' value")
        if kind == "batch" and (role["token_period"] or role["token_explicit_max_ttl"]):
            raise InvalidRequest("batch tokens cannot have a period or an explicit max TTL")
        role["token_type"] = kind
        role["allowed_policies"] = [p.lower() for p in role["allowed_policies"]]
        role["disallowed_policies"] = [p.lower() for p in role["disallowed_policies"]]
        await self.ctx.storage.put_json(f"roles/{name}", role)

    async def delete_role(self, req: Request, fd: FieldData) -> None:
        await self.ctx.storage.delete(f"roles/{fd.get('role_name')}")


def _token_type(fd: FieldData, role: dict[str, Any] | None) -> str:
    """Vault's choice of token type: a role's fixed type wins, its default-* type fills in, batch refuses what a
    batch token cannot carry."""
    wanted = (fd.get("type") or "").lower()
    role_type = (role or {}).get("token_type") or "default-service"
    if role_type in ("service", "batch"):
        wanted = role_type
    elif role_type == "default-batch" and not wanted:
        wanted = "batch"
    if wanted in ("", "service"):
        return "service"
    if wanted != "batch":
        raise InvalidRequest("invalid 'token_type' value")
    for name in ("explicit_max_ttl", "num_uses", "period"):
        if fd.get(name):
            raise InvalidRequest(f'batch tokens cannot have "{name}" set')
    return "batch"


def _revocable(entry: TokenEntry) -> None:
    if entry.is_batch:
        raise InvalidRequest("batch tokens cannot be revoked")


def _display_name(name: str) -> str:
    name = (name or "token").strip()
    return name if name.startswith("token") else f"token-{name}"


def _ttls(core: Core, mount_point: str) -> tuple[int, int]:
    from strongroom.core.pipeline import _mount_ttls

    route = core.router.get(mount_point)
    return _mount_ttls(route.entry.config if route else {})


def _auth_for(token: str, entry: TokenEntry) -> Auth:
    return Auth(
        client_token=token,
        accessor=entry.accessor,
        policies=list(entry.policies),
        token_policies=list(entry.policies),
        metadata=dict(entry.meta),
        ttl=entry.ttl_remaining(),
        renewable=entry.renewable,
        entity_id=entry.entity_id,
        orphan=entry.orphan,
        num_uses=max(entry.num_uses, 0),
        display_name=entry.display_name,
        token_type=entry.type,
    )
