"""``roles/<name>``: what a credential may do and how it is made (``credential_type``), as in Vault.

Writing merges into the stored role (fields not sent keep their value). Reading a ``k8s_`` name with no stored role
shows the dynamic role it resolves to; writing it stores a real role, which from then on wins over the dynamic one.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, NotFound, Request, Response
from strongroom.engines.aws.entries import (
    ASSUMED_ROLE,
    CREDENTIAL_TYPES,
    FEDERATION_TOKEN,
    IAM_USER,
    Role,
    get_role,
    put_role,
)
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import collection_paths

if TYPE_CHECKING:
    from strongroom.engines.aws.backend import AWSBackend

_USER_PATH = re.compile(r"/([\x21-\x7F]{0,510}/)?")
_POLICY_ARN = re.compile(r"arn:[\w-]+:iam::(aws|\d{12}):policy/.+")
_ROLE_ARN = re.compile(r"arn:[\w-]+:iam::\d{12}:role/.+")

FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "Name of the role", required=True, in_path=True),
    "credential_type": Field(
        FieldType.STRING, "Type of credential to retrieve: iam_user, assumed_role, federation_token or session_token"
    ),
    "role_arns": Field(FieldType.COMMA_STRING_LIST, "ARNs of AWS roles allowed to be assumed (assumed_role)"),
    "policy_arns": Field(FieldType.COMMA_STRING_LIST, "ARNs of AWS managed policies (attached, or session policies)"),
    "policy_document": Field(FieldType.STRING, "JSON IAM policy document (inline user policy, or session policy)"),
    "iam_groups": Field(FieldType.COMMA_STRING_LIST, "IAM groups generated IAM users are added to"),
    "iam_tags": Field(FieldType.ANY, "Tags for generated IAM users: a map, or a list of key=value"),
    "session_tags": Field(FieldType.ANY, "Session tags for assumed_role: a map, or a list of key=value"),
    "external_id": Field(FieldType.STRING, "External ID passed to AssumeRole"),
    "default_sts_ttl": Field(FieldType.DURATION, "Default TTL of STS credentials"),
    "max_sts_ttl": Field(FieldType.DURATION, "Max allowed TTL of STS credentials"),
    "user_path": Field(FieldType.STRING, "Path for IAM users (iam_user)"),
    "permissions_boundary_arn": Field(FieldType.STRING, "ARN of a policy used as permissions boundary (iam_user)"),
}
_LISTS = ("role_arns", "policy_arns", "iam_groups")
_SCALARS = ("external_id", "default_sts_ttl", "max_sts_ttl", "user_path", "permissions_boundary_arn")


def parse_tags(value: Any, field_name: str) -> dict[str, str]:
    """Vault's key-value pairs: ``{"k": "v"}``, ``["k=v", ...]`` or ``"k=v,k2=v2"``."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return dict(value)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise InvalidRequest(f"{field_name} must be a map of strings or a list of key=value")
    out: dict[str, str] = {}
    for item in items:
        key, sep, val = item.strip().partition("=")
        if not sep or not key:
            raise InvalidRequest(f"invalid key pair {item!r} in {field_name}")
        out[key] = val
    return out


def compact_policy(text: str) -> str:
    if not text:
        return ""
    try:
        doc = json.loads(text)
    except ValueError:
        raise InvalidRequest(f"cannot parse policy document: {text[:200]!r}") from None
    if not isinstance(doc, dict):
        raise InvalidRequest("policy_document must be a JSON object")
    return json.dumps(doc, separators=(",", ":"))


def validate(role: Role) -> None:
    errors: list[str] = []
    ctype = role.credential_type
    if not ctype:
        errors.append("did not supply credential_type")
    elif ctype not in CREDENTIAL_TYPES:
        errors.append(f"unrecognized credential type: {ctype}")
    sts_ttl_types = (ASSUMED_ROLE, FEDERATION_TOKEN, "session_token")
    if (role.default_sts_ttl or role.max_sts_ttl) and ctype not in sts_ttl_types:
        errors.append("default_sts_ttl and max_sts_ttl are only valid for STS credential types")
    if role.max_sts_ttl and role.default_sts_ttl > role.max_sts_ttl:
        errors.append('"default_sts_ttl" value must be less than or equal to "max_sts_ttl" value')
    if role.user_path:
        if ctype != IAM_USER:
            errors.append(f"user_path parameter only valid for {IAM_USER} credential type")
        if not _USER_PATH.fullmatch(role.user_path):
            errors.append("the specified value for user_path is invalid: it must start and end with /")
    if role.permissions_boundary_arn:
        if ctype != IAM_USER:
            errors.append(f"cannot supply permissions_boundary_arn when credential_type isn't {IAM_USER}")
        if not _POLICY_ARN.fullmatch(role.permissions_boundary_arn):
            errors.append("invalid permissions_boundary_arn parameter: expected an IAM policy ARN")
    if role.role_arns and ctype != ASSUMED_ROLE:
        errors.append(f"cannot supply role_arns when credential_type isn't {ASSUMED_ROLE}")
    errors += [f"invalid role ARN: {arn}" for arn in role.role_arns if not _ROLE_ARN.fullmatch(arn)]
    errors += [f"invalid policy ARN: {arn}" for arn in role.policy_arns if not _POLICY_ARN.fullmatch(arn)]
    if (role.session_tags or role.external_id) and ctype != ASSUMED_ROLE:
        errors.append(f"cannot supply session_tags or external_id when credential_type isn't {ASSUMED_ROLE}")
    if ctype == "session_token" and (role.policy_arns or role.policy_document or role.iam_groups):
        errors.append("cannot supply policy_arns, policy_document or iam_groups with credential_type session_token")
    if errors:
        raise InvalidRequest(f"error(s) validating supplied role data: {'; '.join(errors)}")


def paths(b: AWSBackend) -> list[Path]:
    async def exists(req: Request, fd: FieldData) -> bool:
        return await get_role(b.storage(req), fd.get("name")) is not None

    async def write(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        storage = b.storage(req)
        async with storage.lock(f"role/{name}"):
            role = await get_role(storage, name) or Role(name=name, credential_type="")
            if fd.has("credential_type"):
                role.credential_type = fd.get("credential_type")
            for field_name in _LISTS:
                if fd.has(field_name):
                    setattr(role, field_name, fd.get(field_name))
            for field_name in _SCALARS:
                if fd.has(field_name):
                    setattr(role, field_name, fd.get(field_name))
            if fd.has("policy_document"):
                role.policy_document = compact_policy(fd.get("policy_document"))
            for field_name in ("iam_tags", "session_tags"):
                if fd.has(field_name):
                    setattr(role, field_name, parse_tags(fd.get(field_name), field_name))
            validate(role)
            await put_role(storage, role)
        return None

    async def read(req: Request, fd: FieldData) -> Response:
        role = await b.role(req, fd.get("name"))
        if role is None:
            raise NotFound()
        return Response(data=role.view())

    async def delete(req: Request, fd: FieldData) -> Response | None:
        await b.storage(req).delete(f"role/{fd.get('name')}")
        return None

    async def list_(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await b.storage(req).list_all("role/"))

    return collection_paths(
        "roles", FIELDS, write=write, read=read, delete=delete, list_=list_, exists=exists,
        summary="Read, write and reference IAM policies that access keys can be made for.",
        list_summary="List the existing roles.",
    )  # fmt: skip
