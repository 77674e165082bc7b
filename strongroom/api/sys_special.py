"""The sys endpoints Vault serves outside the router: init, seal status, unseal, health, leader, generate-root, rekey.

They answer bare JSON objects (no envelope) and, except ``sys/seal`` and ``sys/step-down`` (which go through the
pipeline for authentication, sudo and audit), need no token.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from strongroom import __version__
from strongroom.core.logical import InvalidRequest, LogicalError, Sealed
from strongroom.core.seal import decode_key

if TYPE_CHECKING:
    from strongroom.core.core import Core

Handler = Callable[["Core", str, dict[str, Any], dict[str, str]], Awaitable[tuple[int, dict[str, Any] | None]]]
VERSION = f"{__version__}+strongroom"


async def seal_status(core: Core) -> dict[str, Any]:
    cfg = await core.seal_impl.config()
    progress = core.unseal_progress
    out: dict[str, Any] = {
        "type": "shamir",
        "initialized": cfg is not None,
        "sealed": core.sealed,
        "t": cfg.secret_threshold if cfg else 0,
        "n": cfg.secret_shares if cfg else 0,
        "progress": progress.progress if progress else 0,
        "nonce": progress.nonce if progress else "",
        "version": VERSION,
        "build_date": "2026-11-26T00:00:00Z",
        "migration": False,
        "recovery_seal": False,
        "storage_type": core.storage_type,
    }
    if not core.sealed:
        out["cluster_name"] = core.cluster_name
        out["cluster_id"] = core.cluster_id
    return out


async def _init(core: Core, method: str, data: dict[str, Any], query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    if method == "GET":
        return 200, {"initialized": await core.initialized()}
    if "secret_shares" not in data or "secret_threshold" not in data:
        raise InvalidRequest("secret_shares and secret_threshold are required")
    result = await core.initialize(
        data["secret_shares"],
        data["secret_threshold"],
        pgp_keys=data.get("pgp_keys"),
        root_token_pgp_key=data.get("root_token_pgp_key"),
    )
    return 200, result


async def _seal_status(
    core: Core, method: str, data: dict[str, Any], query: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    return 200, await seal_status(core)


async def _unseal(core: Core, method: str, data: dict[str, Any], query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    if method not in ("PUT", "POST"):
        raise LogicalError("unsupported operation", status=405)
    reset = data.get("reset", False)
    if not isinstance(reset, bool):
        raise InvalidRequest("'reset' must be a boolean")
    if reset:
        await core.submit_unseal_key(b"", reset=True)
    else:
        if "key" not in data:
            raise InvalidRequest("'key' must be specified in request body as JSON, or 'reset' set to true")
        await core.submit_unseal_key(decode_key(data["key"]))
    return 200, await seal_status(core)


async def _health(core: Core, method: str, data: dict[str, Any], query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    def code(name: str, default: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise InvalidRequest(f"bad code value for {name}: {raw!r}") from None

    initialized = await core.initialized()
    standby = not core.serving
    body = {
        "initialized": initialized,
        "sealed": core.sealed,
        "standby": standby,
        "performance_standby": False,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": int(time.time()),
        "version": VERSION,
        "cluster_name": core.cluster_name,
        "cluster_id": core.cluster_id,
    }
    if not initialized:
        status = code("uninitcode", 501)
    elif core.sealed:
        status = code("sealedcode", 503)
    elif standby:
        ok = query.get("standbyok", "").lower() in ("true", "1")
        status = code("activecode", 200) if ok else code("standbycode", 429)
    else:
        status = code("activecode", 200)
    return status, body


async def _leader(core: Core, method: str, data: dict[str, Any], query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    if core.sealed:
        raise Sealed()
    return 200, {
        "ha_enabled": core.ha is not None,
        "is_self": core.serving,
        "active_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(core.started)),
        "leader_address": core.ha.leader_address if core.ha is not None else "",
        "leader_cluster_address": "",
        "performance_standby": False,
        "performance_standby_last_remote_wal": 0,
    }


async def _generate_root_attempt(
    core: Core, method: str, data: dict[str, Any], query: dict[str, str]
) -> tuple[int, dict[str, Any] | None]:
    if core.sealed:
        raise Sealed()
    if method == "GET":
        await core.refresh_threshold()
        return 200, core.generate_root_status()
    if method == "DELETE":
        core.generate_root_cancel()
        return 204, None
    otp = data.get("otp") or ""
    if not isinstance(otp, str):
        raise InvalidRequest("'otp' must be a string")
    return 200, await core.generate_root_start(otp, data.get("pgp_key"))


async def _generate_root_update(
    core: Core, method: str, data: dict[str, Any], query: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    if core.sealed:
        raise Sealed()
    if method not in ("PUT", "POST"):
        raise LogicalError("unsupported operation", status=405)
    return 200, await core.generate_root_update(decode_key(data.get("key")), str(data.get("nonce", "")))


async def _rekey_init(
    core: Core, method: str, data: dict[str, Any], query: dict[str, str]
) -> tuple[int, dict[str, Any] | None]:
    if core.sealed:
        raise Sealed()
    if method == "GET":
        return 200, await core.rekey_status()
    if method == "DELETE":
        core.rekey_cancel()
        return 204, None
    if data.get("require_verification"):
        raise InvalidRequest("rekey verification is not supported by this server")
    return 200, await core.rekey_start(
        data.get("secret_shares"), data.get("secret_threshold"), data.get("pgp_keys"), data.get("backup") or False
    )


async def _rekey_update(
    core: Core, method: str, data: dict[str, Any], query: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    if core.sealed:
        raise Sealed()
    if method not in ("PUT", "POST"):
        raise LogicalError("unsupported operation", status=405)
    return 200, await core.rekey_update(decode_key(data.get("key")), str(data.get("nonce", "")))


SPECIAL: dict[str, Handler] = {
    "sys/init": _init,
    "sys/seal-status": _seal_status,
    "sys/unseal": _unseal,
    "sys/health": _health,
    "sys/leader": _leader,
    "sys/generate-root/attempt": _generate_root_attempt,
    "sys/generate-root/update": _generate_root_update,
    "sys/rekey/init": _rekey_init,
    "sys/rekey/update": _rekey_update,
}
