"""Login MFA (Vault's "Login MFA", TOTP methods): what stands between a successful login and its token.

Guarantees:

- **No token before the second factor.** A login that matches a login-enforcement (by auth mount accessor, auth type,
  identity group — inherited groups included — or entity) gets no token: the pipeline answers with
  ``auth.mfa_requirement`` and keeps the pending login behind the barrier for :data:`PENDING_TTL` seconds, under the
  SHA-256 of its ``mfa_request_id`` (storage never holds the id itself). ``sys/mfa/validate`` with that id and a
  passcode per method issues the token. A login that matches an enforcement but has no entity is refused.
- **Secrets behind the barrier.** Methods, enforcements and every entity's TOTP key live under ``sys/mfa/``; the key
  is shown once, as the ``otpauth://`` URL and QR code ``generate``/``admin-generate`` return.
- **Constant-time, once only.** A passcode is compared with every accepted time step in constant time
  (:mod:`strongroom.engines.totp.otp`). The highest time step accepted per (method, entity) is recorded straight to
  storage (it stands even if the request then fails): a code of that step, or of any earlier one, is refused.
- **Lockout.** Every attempt per (method, entity) is counted, straight to storage, in a window of one period; past
  ``max_validation_attempts`` every passcode — right or wrong — is refused until the window ends (Vault's rule).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.core.logical import Auth, InvalidRequest, PermissionDenied
from strongroom.core.request_txn import TxnLock
from strongroom.engines.totp import otp

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView
    from strongroom.core.core import Core
    from strongroom.core.mounts import MountEntry

# how long a login may wait for its second factor (Vault keeps it in memory for a few minutes)
PENDING_TTL = 300
# the key under ``Auth.internal_data`` that carries a pending login's ``mfa_requirement`` to the envelope
REQUIREMENT = "\x00mfa_requirement"
# the key that marks an Auth restored from a validated pending login (set only by :func:`validate`)
VALIDATED = "\x00mfa_validated"
VALIDATE_PATH = "sys/mfa/validate"
# Vault's single-phase login MFA: "<method id or name>:<passcode>" (comma-separated for several) on the login request
HEADER = "x-vault-mfa"
PENDING_WARNING = (
    "A login request was issued that is subject to MFA validation. Please make sure to validate the login by sending "
    "another request to mfa/validate endpoint."
)

METHOD_DEFAULTS: dict[str, Any] = {
    "issuer": "",
    "period": 30,
    "key_size": 20,
    "qr_size": 200,
    "algorithm": "SHA1",
    "digits": 6,
    "skew": 1,
    "max_validation_attempts": 5,
}


def store(core: Core) -> MFAStore:
    """The MFA store of an unsealed core (stateless: every read goes through the barrier and its cache)."""
    return MFAStore(core.barrier.view("sys/mfa/"))


def check_method_config(cfg: dict[str, Any]) -> None:
    """Refuse a TOTP method configuration that could not work, with Vault's kind of message."""
    if not cfg.get("issuer"):
        raise InvalidRequest("issuer field is required")
    if cfg["algorithm"] not in otp.ALGORITHMS:
        raise InvalidRequest(f"unrecognized algorithm: {cfg['algorithm']!r} (use SHA1, SHA256 or SHA512)")
    if cfg["digits"] not in (6, 8):
        raise InvalidRequest("the digits value can only be 6 or 8")
    if cfg["period"] <= 0:
        raise InvalidRequest("period must be greater than zero")
    if cfg["key_size"] < 16 or cfg["key_size"] > 128:
        raise InvalidRequest("key_size must be between 16 and 128 bytes")
    if cfg["skew"] not in (0, 1):
        raise InvalidRequest("skew must be 0 or 1")
    if cfg["qr_size"] < 0:
        raise InvalidRequest("qr_size must not be negative")
    if cfg["max_validation_attempts"] < 0:
        raise InvalidRequest("max_validation_attempts must not be negative")
    if cfg["max_validation_attempts"] == 0:
        cfg["max_validation_attempts"] = METHOD_DEFAULTS["max_validation_attempts"]


class MFAStore:
    """Methods (``method/<id>``), enforcements (``enforcement/<name>``), TOTP keys (``secret/<method>/<entity>``),
    pending logins (``pending/<sha256(id)>``) and replay/lockout state (``used/…``, ``attempts/…``)."""

    def __init__(self, view: BarrierView) -> None:
        self.view = view
        # replay and lockout bookkeeping must stand even when the request that produced it fails
        self._direct = view.outside_request()

    # --- methods -------------------------------------------------------------------------------------------------

    async def method(self, method_id: str) -> dict[str, Any] | None:
        if not method_id or "/" in method_id:
            return None
        rec = await self.view.get_json(f"method/{method_id}")
        return rec if isinstance(rec, dict) else None

    async def method_ids(self) -> list[str]:
        return sorted(await self.view.list_all("method/"))

    async def method_by_name(self, name: str) -> dict[str, Any] | None:
        for mid in await self.method_ids():
            rec = await self.method(mid)
            if rec is not None and rec.get("name") == name:
                return rec
        return None

    async def put_method(self, rec: dict[str, Any]) -> None:
        await self.view.put_json(f"method/{rec['id']}", rec)

    async def delete_method(self, method_id: str) -> None:
        for name in await self.enforcement_names():
            enf = await self.enforcement(name)
            if enf is not None and method_id in enf.get("mfa_method_ids", []):
                raise InvalidRequest(f"method {method_id} is used by login enforcement {name!r}; remove it there first")
        for entity_id in await self.view.list_all(f"secret/{method_id}/"):
            await self.view.delete(f"secret/{method_id}/{entity_id}")
        await self.view.delete(f"method/{method_id}")

    # --- enforcements --------------------------------------------------------------------------------------------

    async def enforcement(self, name: str) -> dict[str, Any] | None:
        rec = await self.view.get_json(f"enforcement/{_name_key(name)}")
        return rec if isinstance(rec, dict) else None

    async def enforcement_names(self) -> list[str]:
        return sorted(bytes.fromhex(k).decode() for k in await self.view.list_all("enforcement/"))

    async def put_enforcement(self, rec: dict[str, Any]) -> None:
        await self.view.put_json(f"enforcement/{_name_key(rec['name'])}", rec)

    async def delete_enforcement(self, name: str) -> None:
        await self.view.delete(f"enforcement/{_name_key(name)}")

    async def matching_enforcements(
        self, accessor: str, mount_type: str, entity_id: str, group_ids: list[str]
    ) -> list[dict[str, Any]]:
        out = []
        for name in await self.enforcement_names():
            enf = await self.enforcement(name)
            if enf is None:
                continue
            if (
                accessor in enf.get("auth_method_accessors", [])
                or mount_type in enf.get("auth_method_types", [])
                or (entity_id and entity_id in enf.get("identity_entity_ids", []))
                or any(g in enf.get("identity_group_ids", []) for g in group_ids)
            ):
                out.append(enf)
        return out

    # --- TOTP keys -----------------------------------------------------------------------------------------------

    async def totp_secret(self, method_id: str, entity_id: str) -> dict[str, Any] | None:
        rec = await self.view.get_json(f"secret/{method_id}/{entity_id}")
        return rec if isinstance(rec, dict) else None

    async def generate_secret(self, method: dict[str, Any], entity_id: str, account: str) -> dict[str, Any] | None:
        """A new TOTP key for the entity; None when it already has one (it is never shown twice)."""
        if await self.totp_secret(method["id"], entity_id) is not None:
            return None
        key = otp.TotpKey(otp.new_key(method["key_size"]), method["period"], method["digits"], method["algorithm"])
        await self.view.put_json(
            f"secret/{method['id']}/{entity_id}",
            {
                "key": otp.b32(key.key),
                "period": key.period,
                "digits": key.digits,
                "algorithm": key.algorithm,
                "skew": method["skew"],
            },
        )
        url = otp.otpauth_url(key, method["issuer"], account)
        barcode = otp.qr_png_b64(url, method["qr_size"]) if method["qr_size"] > 0 else ""
        return {"barcode": barcode, "url": url}

    async def destroy_secret(self, method_id: str, entity_id: str) -> None:
        await self.view.delete(f"secret/{method_id}/{entity_id}")
        await self._direct.delete(f"used/{method_id}/{entity_id}")
        await self._direct.delete(f"attempts/{method_id}/{entity_id}")

    async def check_passcode(self, method: dict[str, Any], entity_id: str, passcode: str, now: float) -> None:
        """Accept ``passcode`` once, or raise PermissionDenied with Vault's message."""
        method_id = method["id"]
        async with _PASSCODE_LOCK:
            secret = await self.totp_secret(method_id, entity_id)
            if secret is None:
                raise PermissionDenied("entity does not contain the TOTP secret")
            period = int(secret["period"])
            limit = int(method.get("max_validation_attempts") or METHOD_DEFAULTS["max_validation_attempts"])
            attempts = await self._direct.get_json(f"attempts/{method_id}/{entity_id}") or {}
            if float(attempts.get("until", 0)) <= now:
                attempts = {"until": now + period, "count": 0}
            if attempts["count"] >= limit:
                wait = max(1, int(attempts["until"] - now))
                raise PermissionDenied(
                    f"maximum TOTP validation attempts {attempts['count'] + 1} exceeded the allowed attempts {limit}."
                    f" Please try again in {wait} seconds"
                )
            attempts["count"] += 1
            await self._direct.put_json(f"attempts/{method_id}/{entity_id}", attempts)
            key = otp.TotpKey(otp.parse_b32(secret["key"]), period, int(secret["digits"]), secret["algorithm"])
            if len(passcode) != key.digits or not passcode.isascii() or not passcode.isdigit():
                raise PermissionDenied("failed to validate TOTP passcode")
            step = key.matching_step(passcode, now, int(secret.get("skew", 1)))
            if step is None:
                raise PermissionDenied("failed to validate TOTP passcode")
            used = await self._direct.get_json(f"used/{method_id}/{entity_id}") or {}
            if step <= int(used.get("step", -1)):
                raise PermissionDenied(f"code already used; new code is available in {period} seconds")
            await self._direct.put_json(f"used/{method_id}/{entity_id}", {"step": step})

    # --- pending logins ------------------------------------------------------------------------------------------

    async def put_pending(self, request_id: str, record: dict[str, Any]) -> None:
        await self.view.put_json(f"pending/{_id_key(request_id)}", record)

    async def pending(self, request_id: str) -> dict[str, Any] | None:
        rec = await self.view.get_json(f"pending/{_id_key(request_id)}")
        return rec if isinstance(rec, dict) else None

    async def drop_pending(self, request_id: str) -> None:
        await self.view.delete(f"pending/{_id_key(request_id)}")

    async def sweep_pending(self, now: float, sample: int = 10) -> None:
        """Remove expired pending logins nobody validated, a few from a random point of the (hashed) key space at a
        time: each MFA login pays a bounded cost, and abandoned logins do not pile up."""
        for key in await self.view.list("pending/", after=secrets.token_hex(32), limit=sample):
            rec = await self.view.get_json(f"pending/{key}")
            if not isinstance(rec, dict) or float(rec.get("expires", 0)) <= now:
                await self._direct.delete(f"pending/{key}")


# One process-wide lock for passcode checks (an MFAStore is made per request, so its view's own locks would not be
# shared). Held to the request's commit, one lock rather than one per (method, entity) so that a request checking two
# methods can never deadlock with another; checks take milliseconds and come at human rate.
_PASSCODE_LOCK = TxnLock()


def _name_key(name: str) -> str:
    return name.encode().hex()


def _id_key(request_id: str) -> str:
    return hashlib.sha256(request_id.encode()).hexdigest()


# --- the pipeline's two steps --------------------------------------------------------------------------------------


async def begin_login(
    core: Core, auth: Auth, entity_id: str, mount: MountEntry, login_path: str
) -> dict[str, Any] | None:
    """The ``mfa_requirement`` for a login that must pass MFA (its pending login stored), or None to issue a token."""
    mfa = store(core)
    if not await mfa.view.list("enforcement/", limit=1):
        return None
    group_ids: list[str] = []
    if entity_id:
        from strongroom.core.identity import group_ids_of

        rec = await core.identity.entity(entity_id)
        if rec is not None:
            direct = group_ids_of(rec)
            group_ids = direct + await core.identity.inherited_group_ids(direct)
    matched = await mfa.matching_enforcements(mount.accessor, mount.type, entity_id, group_ids)
    if not matched:
        return None
    if not entity_id:
        raise PermissionDenied("login MFA is required, but the login has no identity entity to check it against")
    constraints: dict[str, Any] = {}
    for enf in matched:
        methods = []
        for mid in enf.get("mfa_method_ids", []):
            method = await mfa.method(mid)
            if method is not None:
                methods.append({"type": method["type"], "id": mid, "uses_passcode": True, "name": method["name"]})
        constraints[enf["name"]] = {"any": methods}
    await mfa.sweep_pending(time.time())
    request_id = crypto.new_uuid()
    cached = dataclasses.asdict(auth)
    cached.update(alias=None, entity_id=entity_id)
    await mfa.put_pending(
        request_id,
        {
            "auth": cached,
            "mount_accessor": mount.accessor,
            "mount_type": mount.type,
            "login_path": login_path,
            "entity_id": entity_id,
            "expires": time.time() + PENDING_TTL,
        },
    )
    return {"mfa_request_id": request_id, "mfa_constraints": constraints}


async def validate(core: Core, request_id: str, payload: Any) -> Auth:
    """Check the passcodes of a pending login; its Auth, marked for the pipeline's token step, once every
    enforcement that still applies is satisfied. The pending login is consumed in the request's transaction, so a
    failure that stops the request leaves it for another try (within the lockout rules)."""
    if not isinstance(request_id, str) or not request_id:
        raise InvalidRequest("missing request ID")
    if not isinstance(payload, dict) or not payload:
        raise InvalidRequest("missing mfa payload")
    creds: dict[str, list[str]] = {}
    for method_id, codes in payload.items():
        if isinstance(codes, str):
            codes = [codes]
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise InvalidRequest("invalid mfa payload")
        creds[str(method_id)] = codes
    mfa = store(core)
    now = time.time()
    pending = await mfa.pending(request_id)
    if pending is None or float(pending.get("expires", 0)) <= now:
        raise InvalidRequest("invalid request ID")
    entity_id = pending["entity_id"]
    from strongroom.core.identity import group_ids_of

    rec = await core.identity.entity(entity_id)
    if rec is None or rec.get("disabled"):
        raise PermissionDenied("MFA validation failed. entity not found")
    direct = group_ids_of(rec)
    matched = await mfa.matching_enforcements(
        pending["mount_accessor"],
        pending["mount_type"],
        entity_id,
        direct + await core.identity.inherited_group_ids(direct),
    )
    if not matched:
        raise PermissionDenied("found nil or empty MFAEnforcement configuration")
    checked: dict[str, bool] = {}
    for enf in matched:
        errors: list[str] = []
        for mid in enf.get("mfa_method_ids", []):
            if mid in checked:
                if checked[mid]:
                    break
                continue
            codes = creds.get(mid)
            method = await mfa.method(mid)
            if codes is None and method is not None:
                codes = creds.get(method["name"])  # Vault accepts the method's name in place of its id
            if method is None or not codes:
                continue
            try:
                await mfa.check_passcode(method, entity_id, codes[0].strip(), now)
            except PermissionDenied as exc:
                checked[mid] = False
                errors.extend(exc.messages)
                continue
            checked[mid] = True
            break
        else:
            detail = "; ".join(errors) or "MFA credentials not supplied"
            raise PermissionDenied(f"failed to satisfy enforcement {enf['name']}. error: {detail}")
    await mfa.drop_pending(request_id)
    data = {k: v for k, v in pending["auth"].items() if k in _AUTH_FIELDS}
    data["alias"] = None  # the entity was resolved at login
    auth = Auth(**data)
    auth.internal_data = {**auth.internal_data, VALIDATED: [pending["mount_accessor"], pending["login_path"]]}
    return auth


def header_payload(value: str) -> dict[str, list[str]]:
    """The ``mfa_payload`` an ``X-Vault-MFA`` header stands for (empty when there is none)."""
    payload: dict[str, list[str]] = {}
    for item in value.split(","):
        method, sep, passcode = item.strip().partition(":")
        if method:
            payload.setdefault(method, []).append(passcode.strip() if sep else "")
    return payload


_AUTH_FIELDS = {f.name for f in dataclasses.fields(Auth)}


__all__ = ["MFAStore", "PENDING_TTL", "REQUIREMENT", "VALIDATED", "VALIDATE_PATH", "begin_login", "store", "validate"]
