"""``sys/policies/acl[/<name>]`` and the legacy ``sys/policy[/<name>]``: read, write, list and delete ACL policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.core.policy import PolicyError, decode_policy_text
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def names() -> list[str]:
        # Vault lists the stored policies, then the built-in root policy (not stored) last
        return [*await core.policies.list_names(), "root"]

    async def list_acl(req: Request, fd: FieldData) -> Response:
        return Response(data={"keys": await names()})

    async def list_legacy(req: Request, fd: FieldData) -> Response:
        keys = await names()
        return Response(data={"keys": keys, "policies": keys}, inject_top_level=True)

    async def read(req: Request, fd: FieldData, *, legacy: bool) -> Response:
        policy = await core.policies.get(fd.get("name"))
        if policy is None:
            raise NotFound()
        key = "rules" if legacy else "policy"
        return Response(data={"name": policy.name, key: policy.raw}, inject_top_level=legacy)

    async def write(req: Request, fd: FieldData, *, legacy: bool) -> Response | None:
        text = fd.get("policy") or ""
        warnings: list[str] = []
        if not text and legacy:
            text = fd.get("rules") or ""
            if text:
                warnings.append("'rules' is deprecated, please use 'policy' instead")
        if not text:
            raise InvalidRequest("'policy' parameter not supplied or empty")
        try:
            policy = await core.policies.set(fd.get("name"), decode_policy_text(text))
        except PolicyError as exc:
            raise InvalidRequest(str(exc)) from None
        warnings.extend(policy.warnings)
        return Response(warnings=warnings) if warnings else None

    async def delete(req: Request, fd: FieldData) -> None:
        try:
            await core.policies.delete(fd.get("name"))
        except PolicyError as exc:
            raise InvalidRequest(str(exc)) from None

    async def read_acl(req: Request, fd: FieldData) -> Response:
        return await read(req, fd, legacy=False)

    async def read_legacy(req: Request, fd: FieldData) -> Response:
        return await read(req, fd, legacy=True)

    async def write_acl(req: Request, fd: FieldData) -> Response | None:
        return await write(req, fd, legacy=False)

    async def write_legacy(req: Request, fd: FieldData) -> Response | None:
        return await write(req, fd, legacy=True)

    name_field = Field(FieldType.STRING, "The name of the policy (lower-cased).", required=True, in_path=True)
    policy_field = Field(FieldType.STRING, "The policy document, HCL or JSON, optionally base64-encoded.")
    return [
        Path(
            pattern=r"policies/acl/?",
            operations={Operation.LIST: list_acl},
            summary="List the names of the ACL policies.",
        ),
        Path(
            pattern=r"policies/acl/(?P<name>.+)",
            fields={"name": name_field, "policy": policy_field},
            operations={
                Operation.READ: read_acl,
                Operation.UPDATE: write_acl,
                Operation.DELETE: delete,
            },
            summary="Read, write or delete an ACL policy.",
        ),
        Path(
            pattern=r"policy/?",
            operations={Operation.READ: list_legacy, Operation.LIST: list_legacy},
            summary="List the names of the ACL policies (legacy form).",
        ),
        Path(
            pattern=r"policy/(?P<name>.+)",
            fields={
                "name": name_field,
                "policy": policy_field,
                "rules": Field(FieldType.STRING, "Deprecated: the policy document; use 'policy'."),
            },
            operations={
                Operation.READ: read_legacy,
                Operation.UPDATE: write_legacy,
                Operation.DELETE: delete,
            },
            summary="Read, write or delete an ACL policy (legacy form).",
        ),
    ]
