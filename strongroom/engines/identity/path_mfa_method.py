"""identity/mfa/method/totp: Vault's login MFA TOTP methods, and enrolment of an entity (``generate`` for the caller's
own entity, ``admin-generate``/``admin-destroy`` for any). The MFA core is :mod:`strongroom.core.mfa`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.core import mfa
from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.core.core import Core
    from strongroom.engines.identity.backend import IdentityBackend

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

_CONFIG_FIELDS = {
    "method_name": Field(FieldType.STRING, "The unique name identifier for this MFA method."),
    "issuer": Field(FieldType.STRING, "The name of the key's issuing organization."),
    "period": Field(
        FieldType.DURATION, "The length of time used to generate a counter for the TOTP token calculation."
    ),
    "key_size": Field(FieldType.INT, "Determines the size in bytes of the generated key."),
    "qr_size": Field(FieldType.INT, "The pixel size of the generated square QR code."),
    "algorithm": Field(
        FieldType.STRING, "The hashing algorithm used to generate the TOTP token: SHA1, SHA256, SHA512."
    ),
    "digits": Field(FieldType.INT, "The number of digits in the generated TOTP token: 6 or 8."),
    "skew": Field(FieldType.INT, "The number of delay periods that are allowed when validating a TOTP token: 0 or 1."),
    "max_validation_attempts": Field(
        FieldType.INT, "Max number of allowed validation attempts in one period before the entity is locked out."
    ),
}
_METHOD_ID = Field(FieldType.STRING, "The unique identifier for this MFA method.")
_ENTITY_ID = Field(FieldType.STRING, "Entity ID on which the generated secret needs to get stored.")


def method_json(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": rec["id"],
        "name": rec.get("name", ""),
        "type": rec["type"],
        "namespace_id": "root",
        "namespace_path": "",
        "mount_accessor": "",
        "creation_time": rec.get("creation_time", ""),
        "update_time": rec.get("update_time", ""),
        **{k: rec[k] for k in mfa.METHOD_DEFAULTS},
    }


def paths(b: IdentityBackend) -> list[Path]:
    def core() -> Core:
        return b.ctx.services["core"]

    def mstore() -> mfa.MFAStore:
        return mfa.store(core())

    async def write(req: Request, fd: FieldData) -> Response | None:
        store = mstore()
        method_id = req.params.get("method_id", "")
        name = fd.get("method_name") or ""
        rec: dict[str, Any] | None = None
        if method_id:
            rec = await store.method(method_id)
            if rec is None:
                raise NotFound()
        if name:
            named = await store.method_by_name(name)
            if named is not None:
                if rec is not None and named["id"] != rec["id"]:
                    raise InvalidRequest(f"a login MFA method configuration with the method name {name} already exists")
                rec = named
        created = rec is None
        stamp = _now()
        if rec is None:
            rec = {"id": crypto.new_uuid(), "type": "totp", "name": "", "creation_time": stamp, **mfa.METHOD_DEFAULTS}
        elif rec.get("type") != "totp":
            raise InvalidRequest("failed to find the method ID under MFA type totp.")
        cfg = dict(rec)
        if name:
            cfg["name"] = name
        for key in mfa.METHOD_DEFAULTS:
            if fd.has(key):
                cfg[key] = fd.get(key)
        cfg["algorithm"] = str(cfg["algorithm"]).upper()
        mfa.check_method_config(cfg)
        cfg["update_time"] = stamp
        await store.put_method(cfg)
        return Response(data={"method_id": cfg["id"]}) if created and not method_id else None

    async def read(req: Request, fd: FieldData) -> Response:
        rec = await mstore().method(fd.get("method_id"))
        if rec is None:
            raise NotFound()
        if rec["type"] != "totp":
            raise InvalidRequest("failed to find the method ID under MFA type totp.")
        return Response(data=method_json(rec))

    async def delete(req: Request, fd: FieldData) -> None:
        store = mstore()
        if await store.method(fd.get("method_id")) is not None:
            await store.delete_method(fd.get("method_id"))

    async def list_methods(req: Request, fd: FieldData) -> Response:
        store = mstore()
        keys, info = [], {}
        for mid in await store.method_ids():
            rec = await store.method(mid)
            if rec is not None:
                keys.append(mid)
                info[mid] = method_json(rec)
        return Response.list_keys(keys, key_info=info)

    async def enrol(fd: FieldData, entity_id: str) -> Response:
        method_id = fd.get("method_id") or ""
        if not method_id:
            raise InvalidRequest("missing method ID")
        if not entity_id:
            raise InvalidRequest("missing entityID")
        store = mstore()
        method = await store.method(method_id)
        if method is None:
            raise InvalidRequest(f'configuration for method ID "{method_id}" does not exist')
        entity = await b.store.entity(entity_id)
        if entity is None:
            raise InvalidRequest("invalid entity ID")
        out = await store.generate_secret(method, entity_id, entity.get("name") or entity_id)
        if out is None:
            return Response(warnings=[f'Entity already has a secret for MFA method "{method["name"] or method_id}"'])
        return Response(data=out)

    async def generate(req: Request, fd: FieldData) -> Response:
        return await enrol(fd, req.caller.entity_id)

    async def admin_generate(req: Request, fd: FieldData) -> Response:
        return await enrol(fd, fd.get("entity_id") or "")

    async def admin_destroy(req: Request, fd: FieldData) -> None:
        method_id, entity_id = fd.get("method_id") or "", fd.get("entity_id") or ""
        if not method_id:
            raise InvalidRequest("missing method ID")
        if not entity_id:
            raise InvalidRequest("missing entity ID")
        if await b.store.entity(entity_id) is None:
            raise InvalidRequest("invalid entity ID")
        store = mstore()
        if await store.method(method_id) is None:
            raise InvalidRequest(f'configuration for method ID "{method_id}" does not exist')
        await store.destroy_secret(method_id, entity_id)

    id_field = {**_CONFIG_FIELDS, "method_id": Field(FieldType.STRING, _METHOD_ID.description, in_path=True)}
    return [
        Path(
            "mfa/method/totp/generate",
            {Operation.UPDATE: generate},
            {"method_id": _METHOD_ID},
            summary="Generate a TOTP secret for the caller's own entity.",
        ),
        Path(
            "mfa/method/totp/admin-generate",
            {Operation.UPDATE: admin_generate},
            {"method_id": _METHOD_ID, "entity_id": _ENTITY_ID},
            summary="Generate a TOTP secret for an entity.",
        ),
        Path(
            "mfa/method/totp/admin-destroy",
            {Operation.UPDATE: admin_destroy},
            {"method_id": _METHOD_ID, "entity_id": _ENTITY_ID},
            summary="Destroy an entity's TOTP secret.",
        ),
        Path(
            "mfa/method/totp/?",
            {Operation.LIST: list_methods, Operation.UPDATE: write},
            _CONFIG_FIELDS,
            summary="List or create TOTP MFA methods.",
        ),
        Path(
            rf"mfa/method/totp/(?P<method_id>{_UUID})",
            {Operation.READ: read, Operation.UPDATE: write, Operation.DELETE: delete},
            id_field,
            summary="Manage a TOTP MFA method.",
        ),
        Path("mfa/method/?", {Operation.LIST: list_methods}, {}, summary="List MFA methods of every type."),
        Path(
            rf"mfa/method/(?P<method_id>{_UUID})",
            {Operation.READ: read},
            {"method_id": id_field["method_id"]},
            summary="Read an MFA method of any type.",
        ),
    ]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
