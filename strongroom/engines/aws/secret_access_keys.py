"""The ``access_keys`` lease: IAM users the engine created, and (unrevocable) STS credentials.

An IAM user is created with its inline policy, managed policies, groups, tags and one access key; if any step fails,
what was created is deleted again before the error is answered. Revoking the lease deletes every access key, detaches
every managed policy, deletes every inline policy, removes the user from every group and deletes the user, each
listed from AWS at revocation time (so whatever was added to the user later goes too). Any AWS error raises, so the
expiration manager retries with backoff until the user is gone; the lease is never dropped while it exists. A user
that no longer exists counts as revoked once the lease is five minutes old (Vault's rule: younger than that, IAM's
eventual consistency may merely not show it yet).

STS credentials cannot be revoked or renewed: they carry a non-renewable lease that ends when they expire.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, LogicalError, Request, Response, Secret
from strongroom.engines.aws import rollback
from strongroom.engines.aws.client import AWSError, Clients, call
from strongroom.engines.aws.entries import DEFAULT_LEASE, DEFAULT_LEASE_MAX, Role, get_lease, get_root
from strongroom.framework import SecretType

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView
    from strongroom.engines.aws.backend import AWSBackend

log = logging.getLogger(__name__)

SECRET_TYPE = "access_keys"  # noqa: S105 - the lease type name (Vault's), not a secret
MIN_ROLLBACK_AGE = 5 * 60


async def lease_ttls(b: AWSBackend, req: Request) -> tuple[int, int]:
    config = await get_lease(b.storage(req))
    if config is None:
        return DEFAULT_LEASE, DEFAULT_LEASE_MAX
    return config.lease, config.lease_max


async def create_user(
    storage: BarrierView, clients: Clients, role: Role, user_name: str, tags: dict[str, str]
) -> dict[str, Any]:
    """Create the IAM user and its key; on failure, delete what was made and raise (see rollback for crashes)."""
    params: dict[str, Any] = {"UserName": user_name, "Path": role.user_path or "/"}
    if role.permissions_boundary_arn:
        params["PermissionsBoundary"] = role.permissions_boundary_arn
    all_tags = {**role.iam_tags, **tags}
    if all_tags:
        params["Tags"] = [{"Key": k, "Value": v} for k, v in all_tags.items()]
    wal_id = await rollback.put(storage, user_name)
    try:
        await call(clients.iam.create_user, **params)
    except AWSError as exc:
        if exc.code == "EntityAlreadyExists":  # not ours to roll back
            await storage.outside_request().delete(rollback.PREFIX + wal_id)
        raise LogicalError(f"Error creating IAM user: {exc}", status=400) from None
    step = "attaching user policy"
    try:
        for arn in role.policy_arns:
            await call(clients.iam.attach_user_policy, UserName=user_name, PolicyArn=arn)
        if role.policy_document:
            step = "putting user policy"
            await call(
                clients.iam.put_user_policy,
                UserName=user_name,
                PolicyName=role.name,
                PolicyDocument=role.policy_document,
            )
        step = "adding user to group"
        for group in role.iam_groups:
            await call(clients.iam.add_user_to_group, UserName=user_name, GroupName=group)
        step = "creating access keys"
        created = await call(clients.iam.create_access_key, UserName=user_name)
    except AWSError as exc:
        try:
            await delete_user(clients, user_name, accept_missing=True)
            await storage.outside_request().delete(rollback.PREFIX + wal_id)
        except AWSError as undo:
            # the request fails either way; the write-ahead entry stays, so the rollback task retries
            log.error("could not delete half-created IAM user %s yet: %s", user_name, undo)
        raise LogicalError(f"Error {step}: {exc}", status=400) from None
    # committed together with the lease, which from then on is what deletes the user
    await storage.delete(rollback.PREFIX + wal_id)
    return created["AccessKey"]


async def delete_user(clients: Clients, user_name: str, accept_missing: bool) -> None:
    iam = clients.iam
    try:
        groups = (await call(iam.list_groups_for_user, UserName=user_name, MaxItems=1000))["Groups"]
    except AWSError as exc:
        if exc.code == "NoSuchEntity" and accept_missing:
            return
        raise
    inline = (await call(iam.list_user_policies, UserName=user_name, MaxItems=1000))["PolicyNames"]
    attached = (await call(iam.list_attached_user_policies, UserName=user_name, MaxItems=1000))["AttachedPolicies"]
    keys = (await call(iam.list_access_keys, UserName=user_name, MaxItems=1000))["AccessKeyMetadata"]
    for key in keys:
        await call(iam.delete_access_key, UserName=user_name, AccessKeyId=key["AccessKeyId"])
    for policy in attached:
        await call(iam.detach_user_policy, UserName=user_name, PolicyArn=policy["PolicyArn"])
    for policy_name in inline:
        await call(iam.delete_user_policy, UserName=user_name, PolicyName=policy_name)
    for group in groups:
        await call(iam.remove_user_from_group, UserName=user_name, GroupName=group["GroupName"])
    await call(iam.delete_user, UserName=user_name)


def sts_response(creds: dict[str, Any], internal: dict[str, Any], extra: dict[str, Any] | None = None) -> Response:
    expiration: dt.datetime = creds["Expiration"]
    ttl = max(1, int(expiration.timestamp() - time.time()))
    data = {
        "access_key": creds["AccessKeyId"],
        "secret_key": creds["SecretAccessKey"],
        "session_token": creds["SessionToken"],
        "security_token": creds["SessionToken"],  # the name before Vault 1.13, still read by older clients
        "ttl": ttl,
        **(extra or {}),
    }
    return Response(
        data=data,
        secret=Secret(
            lease_type=SECRET_TYPE, ttl=ttl, max_ttl=ttl, renewable=False, internal_data={**internal, "is_sts": True}
        ),
    )


def secret_type(b: AWSBackend) -> SecretType:
    async def revoke(req: Request) -> Response | None:
        assert req.secret is not None
        data = req.secret.internal_data
        if data.get("is_sts"):
            return None  # STS credentials expire on their own and cannot be revoked
        user_name = data.get("username")
        if not user_name or not isinstance(user_name, str):
            raise InvalidRequest("secret is missing username internal data")
        issued = float(data.get("issued_at") or 0)
        clients = await b.clients.get(await get_root(b.storage(req)))
        try:
            await delete_user(clients, user_name, accept_missing=time.time() - issued > MIN_ROLLBACK_AGE)
        except AWSError as exc:
            raise LogicalError(f"error deleting IAM user {user_name}: {exc}", status=500) from None
        return None

    async def renew(req: Request) -> Response | None:
        assert req.secret is not None
        if req.secret.internal_data.get("is_sts"):
            raise InvalidRequest("lease is not renewable")
        ttl, max_ttl = await lease_ttls(b, req)
        with contextlib.suppress(TypeError, ValueError):
            increment = int(req.data.get("increment") or 0)
            if increment > 0:
                ttl = min(increment, max_ttl) if max_ttl else increment
        return Response(secret=Secret(lease_type=SECRET_TYPE, ttl=ttl, max_ttl=max_ttl, renewable=True))

    return SecretType(name=SECRET_TYPE, revoke=revoke, renew=renew)
