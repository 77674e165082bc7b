"""``creds/<name>`` and ``sts/<name>``: new AWS credentials for a role, returned as a lease.

``iam_user`` makes a new IAM user (a renewable, revocable lease; see secret_access_keys); ``assumed_role``,
``federation_token`` and ``session_token`` call STS and return session credentials whose lease ends with them. The
role may be stored or dynamic (``k8s_<base>_<sa>_<namespace>``, see dynamic_roles). Every IAM user is tagged with
the display name of the token that asked for it, and its name carries it too, so AWS's own logs lead back to the
audit trail's request.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, LogicalError, Operation, Request, Response, Secret
from strongroom.engines.aws import iam_policies
from strongroom.engines.aws import username as usernames
from strongroom.engines.aws.client import AWSError, Clients, call
from strongroom.engines.aws.entries import (
    ASSUMED_ROLE,
    DEFAULT_STS_TTL,
    FEDERATION_TOKEN,
    IAM_USER,
    SESSION_TOKEN,
    Role,
    get_root,
)
from strongroom.engines.aws.secret_access_keys import SECRET_TYPE, create_user, lease_ttls, sts_response
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.aws.backend import AWSBackend

FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "Name of the role", required=True, in_path=True),
    "role_arn": Field(FieldType.STRING, "ARN of the role to assume when credential_type is assumed_role"),
    "ttl": Field(FieldType.DURATION, "Lifetime of the returned STS credentials (default 1h or the role's)"),
    "role_session_name": Field(FieldType.STRING, "Session name to use when assuming a role (at most 64 characters)"),
}
_TAG_VALUE_LIMIT = 256


def paths(b: AWSBackend) -> list[Path]:
    async def creds(req: Request, fd: FieldData) -> Response:
        name = fd.get("name")
        role = await b.role(req, name)
        if role is None:
            raise InvalidRequest(f'Role "{name}" not found')
        config = await get_root(b.storage(req))
        display = req.caller.display_name or "token"
        try:
            clients = await b.clients.get(config)
        except Exception as exc:  # a configuration boto3 cannot use (bad region name, …)
            raise InvalidRequest(f"unable to build an AWS client: {type(exc).__name__}") from None
        internal: dict[str, Any] = {"role": name, "issued_at": time.time()}
        if role.dynamic_from:
            internal["dynamic_from"] = role.dynamic_from
        if role.credential_type == IAM_USER:
            return await _iam_user(b, req, clients, role, config.username_template, display, internal)
        if role.iam_groups and role.credential_type in (ASSUMED_ROLE, FEDERATION_TOKEN):
            documents, arns = await iam_policies.group_policies(clients, role.iam_groups)
            role = replace(
                role,
                policy_document=iam_policies.combine(*documents, role.policy_document),
                policy_arns=[*role.policy_arns, *(a for a in arns if a not in role.policy_arns)],
            )
        ttl = fd.get("ttl") if fd.has("ttl") else (role.default_sts_ttl or DEFAULT_STS_TTL)
        if role.max_sts_ttl:
            ttl = min(ttl, role.max_sts_ttl)
        if ttl <= 0:
            raise InvalidRequest("ttl must be positive")
        try:
            if role.credential_type == ASSUMED_ROLE:
                return await _assume_role(clients, role, fd, ttl, config.username_template, display, internal)
            if role.credential_type == FEDERATION_TOKEN:
                return await _federation_token(clients, role, ttl, config.username_template, display, internal)
            if role.credential_type == SESSION_TOKEN:
                return await _session_token(clients, ttl, internal)
        except usernames.TemplateError as exc:
            raise InvalidRequest(str(exc)) from None
        raise InvalidRequest(f'unknown credential_type: "{role.credential_type}"')

    return [
        Path(
            pattern=rf"(creds|sts)/{generic_name('name')}",
            fields=FIELDS,
            operations={Operation.READ: creds, Operation.UPDATE: creds},
            summary="Generate AWS credentials from a specific role.",
        )
    ]


async def _iam_user(
    b: AWSBackend,
    req: Request,
    clients: Clients,
    role: Role,
    template: str,
    display: str,
    internal: dict[str, Any],
) -> Response:
    try:
        user_name = usernames.generate(template, display, role.name)
    except usernames.TemplateError as exc:
        raise InvalidRequest(str(exc)) from None
    tags = {"strongroom-requested-by": usernames.normalize(display)[:_TAG_VALUE_LIMIT]}
    if req.request_id:
        tags["strongroom-request-id"] = req.request_id[:_TAG_VALUE_LIMIT]
    key = await create_user(b.storage(req), clients, role, user_name, tags)
    ttl, max_ttl = await lease_ttls(b, req)
    return Response(
        data={
            "access_key": key["AccessKeyId"],
            "secret_key": key["SecretAccessKey"],
            "session_token": None,
            "security_token": None,
        },
        secret=Secret(
            lease_type=SECRET_TYPE,
            ttl=ttl,
            max_ttl=max_ttl,
            renewable=True,
            internal_data={**internal, "username": user_name, "is_sts": False},
        ),
    )


async def _assume_role(
    clients: Clients,
    role: Role,
    fd: FieldData,
    ttl: int,
    template: str,
    display: str,
    internal: dict[str, Any],
) -> Response:
    role_arn = fd.get("role_arn") if fd.has("role_arn") else ""
    if not role_arn:
        if len(role.role_arns) != 1:
            raise InvalidRequest("did not supply a role_arn parameter and unable to determine one")
        role_arn = role.role_arns[0]
    elif role_arn not in role.role_arns:
        raise InvalidRequest(f'role_arn "{role_arn}" not in allowed role arns for role "{role.name}"')
    session_name = fd.get("role_session_name") if fd.has("role_session_name") else ""
    if session_name:
        session_name = usernames.normalize(session_name)
        if not 2 <= len(session_name) <= 64:
            raise InvalidRequest("role_session_name must be 2 to 64 characters")
    else:
        session_name = usernames.generate(template, display, role.name)
    params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": session_name, "DurationSeconds": ttl}
    if role.policy_document:
        params["Policy"] = role.policy_document
    if role.policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in role.policy_arns]
    if role.session_tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in role.session_tags.items()]
    if role.external_id:
        params["ExternalId"] = role.external_id
    try:
        resp = await call(clients.sts.assume_role, **params)
    except AWSError as exc:
        raise LogicalError(f"Error assuming role: {exc}", status=400) from None
    internal = {**internal, "username": session_name, "policy": role_arn}
    return sts_response(resp["Credentials"], internal, {"arn": resp["AssumedRoleUser"]["Arn"]})


async def _federation_token(
    clients: Clients, role: Role, ttl: int, template: str, display: str, internal: dict[str, Any]
) -> Response:
    if not role.policy_document and not role.policy_arns:
        # without either, AWS would hand out the engine's own permissions
        raise InvalidRequest("must specify at least one of policy_arns or policy_document with federation_token")
    name = usernames.generate(template, display, role.name, sts=True)
    params: dict[str, Any] = {"Name": name, "DurationSeconds": ttl}
    if role.policy_document:
        params["Policy"] = role.policy_document
    if role.policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in role.policy_arns]
    try:
        resp = await call(clients.sts.get_federation_token, **params)
    except AWSError as exc:
        raise LogicalError(f"Error generating STS keys: {exc}", status=400) from None
    return sts_response(resp["Credentials"], {**internal, "username": name})


async def _session_token(clients: Clients, ttl: int, internal: dict[str, Any]) -> Response:
    try:
        resp = await call(clients.sts.get_session_token, DurationSeconds=ttl)
    except AWSError as exc:
        raise LogicalError(f"Error generating STS keys: {exc}", status=400) from None
    return sts_response(resp["Credentials"], internal)
