"""sys/internal/ui/mounts and sys/internal/ui/mounts/<path>: the mounts a token may see, and the mount serving a path.

The Vault CLI (``vault kv …``), Vault Agent, External Secrets and the Terraform provider ask
``sys/internal/ui/mounts/<path>`` which engine and KV version serve a path before every call. As in Vault, any valid
token may ask (no policy has to grant these paths); the answer is filtered by what the token's policies grant *under*
each mount, and a mount the token may not see at all is indistinguishable from a missing one (403 for both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core import wrapping
from strongroom.core.acl import ACL
from strongroom.core.logical import InvalidRequest, Operation, PermissionDenied, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core
    from strongroom.core.mounts import MountEntry

# what grants "something under a mount" (Vault's hasMountAccess)
_GRANTS = frozenset({"create", "delete", "list", "patch", "read", "sudo", "update"})


async def caller_acl(core: Core, req: Request) -> ACL | None:
    """The caller's compiled policies (token and identity), or None for a root token."""
    if req.caller.is_root:
        return None
    entry = await core.tokens.lookup_hash(req.caller.token_hash)
    if entry is None:
        raise PermissionDenied()
    fixed = wrapping.acl_for(entry)  # a wrapping token sees only what its fixed ACL grants
    if fixed is not None:
        return fixed
    identity = await core.pipeline._identity_policies(entry)
    return await core.policies.acl_for(tuple(entry.policies) + tuple(identity), entry.entity_id)


async def caller_has_sudo(core: Core, req: Request, path: str, op: Operation) -> bool:
    acl = await caller_acl(core, req)
    return acl is None or acl.allow(op, path, None, True).allowed


def has_mount_access(acl: ACL | None, mount_path: str) -> bool:
    """Whether any policy grants something at or under ``mount_path`` (a deny on the mount alone does not hide
    grants deeper down, as in Vault)."""
    if acl is None:
        return True
    if acl.capabilities(mount_path) != ["deny"]:
        return True
    parts = mount_path.rstrip("/").split("/")
    for layer in acl.layers:
        for table in (layer.exact, layer.prefix):
            for key, perms in table.items():
                if key.startswith(mount_path) and not perms.is_deny and perms.caps & _GRANTS:
                    return True
        for pattern, perms in layer.segment.items():
            if perms.is_deny or not perms.caps & _GRANTS:
                continue
            segs = pattern.rstrip("*").split("/")
            if len(segs) > len(parts) and all(s in ("+", p) for s, p in zip(segs, parts, strict=False)):
                return True
    return False


def mount_info(entry: MountEntry) -> dict[str, Any]:
    info = entry.to_api()
    info.setdefault("external_entropy_access", entry.external_entropy_access)
    return info


def paths(core: Core) -> list[Path]:
    async def read_all(req: Request, fd: FieldData) -> Response:
        acl = await caller_acl(core, req)
        out: dict[str, dict[str, Any]] = {"secret": {}, "auth": {}}
        for group, is_auth in (("secret", False), ("auth", True)):
            for entry in core.router.entries(is_auth):
                if entry.config.get("listing_visibility") == "unauth" or has_mount_access(acl, entry.route_path):
                    out[group][entry.path] = mount_info(entry)
        return Response(data=out)

    async def read_one(req: Request, fd: FieldData) -> Response:
        raw = fd.get("path") or ""
        if not raw.strip("/"):
            raise InvalidRequest("path not set")
        path = raw.lstrip("/")
        path = path if path.endswith("/") else path + "/"
        refused = PermissionDenied(
            f'preflight capability check returned 403, please ensure client\'s policies grant access to path "{path}"'
        )
        matched = core.router.match(path)
        if matched is None:
            raise refused  # the same answer as for a hidden mount: this path must not enumerate mounts
        entry = matched[0].entry
        if not has_mount_access(await caller_acl(core, req), entry.route_path):
            raise refused
        return Response(data={**mount_info(entry), "path": entry.path})

    return [
        Path(
            r"internal/ui/mounts/?",
            {Operation.READ: read_all},
            summary="The secrets engines and auth methods the caller's policies grant something under.",
            any_token=True,
        ),
        Path(
            r"internal/ui/mounts/(?P<path>.+)",
            {Operation.READ: read_one},
            {"path": Field(FieldType.STRING, "A path served by the mount to describe.", in_path=True)},
            summary="The mount that serves a path (type, options incl. the KV version, accessor, config).",
            any_token=True,
        ),
    ]
