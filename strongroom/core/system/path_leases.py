"""``sys/leases/*`` and the legacy ``sys/renew``, ``sys/revoke*``: Vault's lease API over the expiration manager."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.framework.fields import Field, FieldData, FieldType
from strongroom.framework.path import Path

if TYPE_CHECKING:
    from strongroom.core.core import Core
    from strongroom.core.expiration import ExpirationManager

log = logging.getLogger(__name__)

_LEASE_ID = Field(FieldType.STRING, "The lease identifier (for example database/creds/ro/<id>).")
_URL_LEASE_ID = Field(FieldType.STRING, "The lease identifier, in the URL.", in_path=True)
_PREFIX = Field(FieldType.STRING, "The lease prefix (a lease id or a request path ending in /).", in_path=True)
_SYNC = Field(FieldType.BOOL, "Revoke before answering (true) or queue the revocation (false, answers 202).", True)
_VAULT_IRREVOCABLE_LIMIT = 10000
_VAULT_IRREVOCABLE_WARNING = (
    "Command halted because many irrevocable leases were found. To emit the entire list, re-run the command with "
    "limit=none."
)
_TIDY_WARNING = (
    "Tidy operation successfully started. Any information from the operation will be printed to Strongroom's "
    "server logs."
)


def paths(core: Core) -> list[Path]:
    background: set[asyncio.Task[object]] = set()

    def manager() -> ExpirationManager:
        return core.expiration

    def lease_id_of(fd: FieldData) -> str:
        # the URL wins: the ACL authorised the URL, so a body must not be able to name another lease
        lease_id = fd.get("url_lease_id") or fd.get("lease_id") or ""
        if not lease_id:
            raise InvalidRequest("lease_id must be specified")
        return lease_id

    async def lookup(req: Request, fd: FieldData) -> Response:
        lease_id = fd.get("lease_id")
        if not lease_id:
            raise InvalidRequest("lease_id must be specified")
        return Response(data=await manager().lookup(lease_id))

    async def lookup_list(req: Request, fd: FieldData) -> Response:
        keys = await manager().list_prefix(fd.get("prefix") or "", fd.get("after") or "", max(fd.get("limit"), 0))
        return Response.list_keys(keys)

    async def renew(req: Request, fd: FieldData) -> Response:
        # the Response's secret carries the existing lease_id: the pipeline shapes the envelope and does not register
        return await manager().renew(lease_id_of(fd), fd.get("increment"))

    async def revoke(req: Request, fd: FieldData) -> Response | None:
        sync = fd.get("sync")
        await manager().revoke(lease_id_of(fd), sync=sync)
        return None if sync else Response(status=202)

    async def revoke_prefix(req: Request, fd: FieldData) -> Response | None:
        sync = fd.get("sync")
        await manager().revoke_prefix(fd.get("prefix"), sync=sync)
        return None if sync else Response(status=202)

    async def revoke_force(req: Request, fd: FieldData) -> None:
        await manager().revoke_force(fd.get("prefix"))

    async def tidy(req: Request, fd: FieldData) -> Response:
        task: asyncio.Task[object] = asyncio.create_task(manager().tidy(), name="lease-tidy")
        background.add(task)
        task.add_done_callback(_finish_tidy(background))
        return Response(status=202, warnings=[_TIDY_WARNING])

    async def irrevocable(req: Request, fd: FieldData) -> Response:
        leases = await manager().irrevocable(limit=max(fd.get("limit"), 0))
        return Response(data={"lease_count": len(leases), "leases": leases})

    def mount_id(mount_path: str) -> str:
        route = core.router.get(mount_path)
        return route.entry.accessor if route is not None else "mount-accessor-not-found"

    def irrevocable_type(fd: FieldData) -> None:
        if fd.get("type") != "irrevocable":
            raise InvalidRequest("'type' must be 'irrevocable'")

    async def vault_irrevocable(req: Request, fd: FieldData) -> Response:
        # Vault 1.8+'s GET sys/leases?type=irrevocable: at most 10000 unless limit=none, with a warning when cut
        irrevocable_type(fd)
        raw_limit = (fd.get("limit") or "").strip().lower()
        if raw_limit in ("", "none"):
            limit = 0 if raw_limit == "none" else _VAULT_IRREVOCABLE_LIMIT
        elif raw_limit.isdigit() and int(raw_limit) > 0:
            limit = int(raw_limit)
        else:
            raise InvalidRequest("failed to parse limit: must be a positive integer or 'none'")
        leases = await manager().irrevocable(limit=limit + 1 if limit else 0)
        warnings = []
        if limit and len(leases) > limit:
            leases = leases[:limit]
            warnings.append(_VAULT_IRREVOCABLE_WARNING)
        data = {
            "lease_count": len(leases),
            "leases": [
                {"lease_id": x["lease_id"], "mount_id": mount_id(x["mount_path"]), "error": x["error"]} for x in leases
            ],
        }
        return Response(data=data, warnings=warnings)

    async def vault_count(req: Request, fd: FieldData) -> Response:
        irrevocable_type(fd)
        counts: dict[str, int] = {}
        leases = await manager().irrevocable(limit=0)
        for x in leases:
            key = mount_id(x["mount_path"])
            counts[key] = counts.get(key, 0) + 1
        return Response(data={"lease_count": len(leases), "counts": counts})

    renew_fields = {
        "lease_id": _LEASE_ID,
        "url_lease_id": _URL_LEASE_ID,
        "increment": Field(FieldType.DURATION, "Requested extension, counted from now; capped at the max TTL.", 0),
    }
    revoke_fields = {"lease_id": _LEASE_ID, "url_lease_id": _URL_LEASE_ID, "sync": _SYNC}
    renew_help = "Renew a lease: its TTL becomes the increment (or its original TTL) from now, never past its max TTL."
    revoke_help = "Revoke a lease (sync by default; sync=false queues it and answers 202)."
    prefix_help = "Revoke every lease under a prefix (root-protected)."
    force_help = "Revoke every lease under a prefix, deleting it even if the backend cannot revoke it (root-protected)."

    out = [
        Path(
            pattern=r"leases/lookup",
            fields={"lease_id": _LEASE_ID},
            operations={Operation.UPDATE: lookup},
            summary="Read a lease's issue, expiry and renewal times and remaining TTL.",
        ),
        Path(
            pattern=r"leases/lookup/(?P<prefix>.*)",
            fields={
                "prefix": _PREFIX,
                "after": Field(FieldType.STRING, "List only keys after this one (pagination)."),
                "limit": Field(FieldType.INT, "At most this many keys (0: no limit).", 0),
            },
            operations={Operation.LIST: lookup_list},
            sudo=True,
            summary="List the lease ids and sub-prefixes under a prefix (folders end in /).",
        ),
        Path(
            pattern=r"leases/tidy",
            operations={Operation.UPDATE: tidy},
            summary="Clean up dangling lease indexes and re-schedule stored leases, in the background.",
        ),
        Path(
            pattern=r"leases",
            fields={
                "type": Field(FieldType.STRING, "Must be 'irrevocable'."),
                "limit": Field(FieldType.STRING, "At most this many (default 10000; 'none': all)."),
                "include_child_namespaces": Field(
                    FieldType.BOOL, "Accepted for Vault compatibility (no namespaces).", False
                ),
            },
            operations={Operation.READ: vault_irrevocable},
            sudo=True,
            summary="Vault's irrevocable lease listing: lease_id, mount_id (the mount accessor) and error.",
        ),
        Path(
            pattern=r"leases/count",
            fields={
                "type": Field(FieldType.STRING, "Must be 'irrevocable'."),
                "include_child_namespaces": Field(
                    FieldType.BOOL, "Accepted for Vault compatibility (no namespaces).", False
                ),
            },
            operations={Operation.READ: vault_count},
            sudo=True,
            summary="Number of irrevocable leases, in total and per mount accessor.",
        ),
        Path(
            pattern=r"leases/irrevocable",
            fields={"limit": Field(FieldType.INT, "At most this many leases (0: all).", 10000)},
            operations={Operation.READ: irrevocable},
            sudo=True,
            summary="Leases whose revocation keeps failing; they are retried until revoked or force-revoked.",
        ),
    ]
    for base in ("leases/", ""):
        out += [
            Path(
                pattern=rf"{base}renew(/(?P<url_lease_id>.+))?",
                fields=renew_fields,
                operations={Operation.UPDATE: renew},
                summary=renew_help,
            ),
            Path(
                pattern=rf"{base}revoke(/(?P<url_lease_id>.+))?",
                fields=revoke_fields,
                operations={Operation.UPDATE: revoke},
                summary=revoke_help,
            ),
            Path(
                pattern=rf"{base}revoke-prefix/(?P<prefix>.+)",
                fields={"prefix": _PREFIX, "sync": _SYNC},
                operations={Operation.UPDATE: revoke_prefix},
                sudo=True,
                summary=prefix_help,
            ),
            Path(
                pattern=rf"{base}revoke-force/(?P<prefix>.+)",
                fields={"prefix": _PREFIX},
                operations={Operation.UPDATE: revoke_force},
                sudo=True,
                summary=force_help,
            ),
        ]
    return out


def _finish_tidy(background: set[asyncio.Task[object]]) -> Callable[[asyncio.Task[object]], None]:
    def done(task: asyncio.Task[object]) -> None:
        background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("lease tidy failed: %s", type(task.exception()).__name__)

    return done
