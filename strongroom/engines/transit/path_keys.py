"""``keys``, ``keys/<name>`` (``config``, ``rotate``, ``trim``, ``import``, ``import_version``), ``wrapping_key``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.transit import crypto
from strongroom.engines.transit.ciphertext import b64decode
from strongroom.engines.transit.keys import KEY_TYPES, Policy
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.transit.backend import TransitBackend

NAME = Field(FieldType.STRING, "Name of the key", in_path=True, required=True)
HOUR = 3600


def check_rotate_period(seconds: int) -> int:
    if seconds != 0 and seconds < HOUR:
        raise InvalidRequest("auto rotate period must be 0 to disable or at least an hour")
    return seconds


CREATE_FIELDS = {
    "name": NAME,
    "type": Field(FieldType.STRING, "The type of key to create.", default="aes256-gcm96"),
    "derived": Field(FieldType.BOOL, "Enables key derivation: a context is required for every operation.",
                     default=False),
    "convergent_encryption": Field(FieldType.BOOL, "Same plaintext and context give the same ciphertext; needs "
                                   "derived.", default=False),
    "exportable": Field(FieldType.BOOL, "Allows the key to be exported. Cannot be disabled once set.", default=False),
    "allow_plaintext_backup": Field(FieldType.BOOL, "Allows a plaintext backup of the key.", default=False),
    "auto_rotate_period": Field(FieldType.DURATION, "Rotate the key automatically this often (0 disables, else at "
                                "least 1h).", default=0),
    "key_size": Field(FieldType.INT, "The key size in bytes for HMAC keys.", default=0),
    "context": Field(FieldType.STRING, "Base64 context for derived Ed25519 public keys on read.", default=""),
}

CONFIG_FIELDS = {
    "name": NAME,
    "min_decryption_version": Field(FieldType.INT, "The minimum version of ciphertext allowed to be decrypted."),
    "min_encryption_version": Field(FieldType.INT, "The minimum version of the key allowed to encrypt (0: latest)."),
    "deletion_allowed": Field(FieldType.BOOL, "Whether to allow deletion of the key."),
    "exportable": Field(FieldType.BOOL, "Enables export of the key. Once set, this cannot be disabled."),
    "allow_plaintext_backup": Field(FieldType.BOOL, "Enables plaintext backup of the key. Cannot be disabled."),
    "auto_rotate_period": Field(FieldType.DURATION, "Automatic rotation period (0 disables, else at least 1h)."),
}

IMPORT_FIELDS = {
    "name": NAME,
    "ciphertext": Field(FieldType.STRING, "The base64 target key wrapped as Vault's BYOK format.", required=True),
    "hash_function": Field(FieldType.STRING, "The OAEP hash function used to wrap the ephemeral key.",
                           default="SHA256"),
    "type": Field(FieldType.STRING, "The type of the imported key.", default="aes256-gcm96"),
    "allow_rotation": Field(FieldType.BOOL, "Whether Strongroom may rotate the imported key.", default=False),
    "derived": Field(FieldType.BOOL, "Enables key derivation.", default=False),
    "context": Field(FieldType.STRING, "Base64 context (derived keys).", default=""),
    "exportable": Field(FieldType.BOOL, "Allows the key to be exported.", default=False),
    "allow_plaintext_backup": Field(FieldType.BOOL, "Allows a plaintext backup of the key.", default=False),
    "auto_rotate_period": Field(FieldType.DURATION, "Automatic rotation period.", default=0),
    "convergent_encryption": Field(FieldType.BOOL, "Not supported for imported keys.", default=False),
}


def _unwrap(b: TransitBackend, wrapping_key: bytes, fd: FieldData) -> bytes:
    hash_function = str(fd.get("hash_function")).upper()
    if hash_function not in crypto.OAEP_HASH_NAMES:
        raise InvalidRequest(f"unsupported hash function: {fd.get('hash_function')}")
    blob = b64decode(fd.get("ciphertext"), "ciphertext")
    try:
        return crypto.unwrap_import(wrapping_key, blob, hash_function)
    except crypto.CryptoError as exc:
        raise InvalidRequest(str(exc)) from None


def paths(b: TransitBackend) -> list[Path]:
    store = b.keys

    async def list_keys(req: Request, fd: FieldData) -> Response | None:
        return Response.list_keys(await store.names())

    async def create(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        key_type = fd.get("type")
        if key_type not in KEY_TYPES:
            raise InvalidRequest(f"unknown key type {key_type}")
        period = check_rotate_period(fd.get("auto_rotate_period"))
        async with store.lock(name):
            existing = await store.get(name)
            if existing is not None:
                return Response(data=existing.to_api(), warnings=[f"key {name} already existed"])
            policy = Policy.create(
                name, key_type, derived=fd.get("derived"), convergent=fd.get("convergent_encryption"),
                exportable=fd.get("exportable"), allow_plaintext_backup=fd.get("allow_plaintext_backup"),
                auto_rotate_period=period, key_size=fd.get("key_size"),
            )
            await store.put(policy)
        return Response(data=policy.to_api())

    async def read(req: Request, fd: FieldData) -> Response | None:
        policy = await store.get(fd.get("name"))
        if policy is None:
            raise NotFound()
        context = b64decode(fd.get("context"), "context") if fd.get("context") else b""
        return Response(data=policy.to_api(context))

    async def delete(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        async with store.lock(name):
            policy = await store.get(name)
            if policy is None:
                raise InvalidRequest(f"error deleting policy {name}: could not delete key; not found")
            if not policy.deletion_allowed:
                raise InvalidRequest(f"error deleting policy {name}: deletion is not allowed for this policy")
            await store.delete(name)
        return None

    async def config(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        warnings: list[str] = []
        async with store.lock(name):
            p = await store.get(name, for_update=True)
            if p is None:
                raise InvalidRequest(f"no existing key named {name} could be found")
            mdv, has_mdv = fd.get_ok("min_decryption_version")
            if has_mdv:
                if mdv < 0:
                    raise InvalidRequest("min decryption version cannot be negative")
                if mdv == 0:
                    mdv = 1
                    warnings.append("since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1")
                if mdv != p.min_decryption_version:
                    if mdv > p.latest_version:
                        raise InvalidRequest(f"cannot set min decryption version of {mdv}, latest key version is "
                                             f"{p.latest_version}")
                    if mdv < p.min_available_version:
                        raise InvalidRequest(f"cannot set min decryption version of {mdv}, min available version "
                                             f"is {p.min_available_version}")
                    p.min_decryption_version = mdv
            mev, has_mev = fd.get_ok("min_encryption_version")
            if has_mev:
                if mev < 0:
                    raise InvalidRequest("min encryption version cannot be negative")
                if mev > p.latest_version:
                    raise InvalidRequest(f"cannot set min encryption version of {mev}, latest key version is "
                                         f"{p.latest_version}")
                p.min_encryption_version = mev
            if 0 < p.min_encryption_version < p.min_decryption_version:
                raise InvalidRequest(
                    f"cannot set min encryption/decryption values; min encryption version of "
                    f"{p.min_encryption_version} must be greater than or equal to min decryption version of "
                    f"{p.min_decryption_version}"
                )
            allowed, has_allowed = fd.get_ok("deletion_allowed")
            if has_allowed:
                p.deletion_allowed = allowed
            exportable, has_exportable = fd.get_ok("exportable")
            backup, has_backup = fd.get_ok("allow_plaintext_backup")
            if p.attestation is not None and ((has_exportable and exportable) or (has_backup and backup)):
                raise InvalidRequest(f"key {name} is bound to an attestation policy: it can be neither exportable "
                                     "nor backed up in plaintext")
            if has_exportable:
                if p.exportable and not exportable:
                    raise InvalidRequest("cannot disable exportability")
                p.exportable = exportable
            if has_backup:
                if p.allow_plaintext_backup and not backup:
                    raise InvalidRequest("cannot disable plaintext backup")
                p.allow_plaintext_backup = backup
            period, has_period = fd.get_ok("auto_rotate_period")
            if has_period:
                p.auto_rotate_period = check_rotate_period(period)
            await store.put(p)
        return Response(data=p.to_api(), warnings=warnings)

    async def rotate(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        async with store.lock(name):
            p = await store.get(name, for_update=True)
            if p is None:
                raise InvalidRequest("key not found")
            if p.imported and not p.allow_imported_key_rotation:
                raise InvalidRequest(f"imported key {name} does not allow rotation within Vault")
            p.rotate()
            p.imported = False if p.allow_imported_key_rotation else p.imported
            await store.put(p)
        return Response(data=p.to_api())

    async def trim(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        async with store.lock(name):
            p = await store.get(name, for_update=True)
            if p is None:
                raise InvalidRequest("invalid key name")
            mav, has = fd.get_ok("min_available_version")
            if not has:
                raise InvalidRequest("missing min_available_version")
            if mav < 0:
                raise InvalidRequest("minimum available version cannot be negative")
            if mav == 0:
                raise InvalidRequest("minimum available version should be positive")
            if mav < p.min_available_version:
                raise InvalidRequest("minimum available version cannot be decremented")
            if p.min_encryption_version == 0:
                raise InvalidRequest("minimum available version cannot be set when minimum encryption version "
                                     "is not set")
            if mav > p.min_encryption_version:
                raise InvalidRequest("cannot set minimum available version to be greater than minimum encryption "
                                     "version")
            if mav > p.min_decryption_version:
                raise InvalidRequest("cannot set minimum available version to be greater than minimum decryption "
                                     "version")
            p.keys = {v: e for v, e in p.keys.items() if v >= mav}
            p.min_available_version = mav
            await store.put(p)
        return Response(data=p.to_api())

    async def import_key(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        key_type = fd.get("type")
        if key_type not in KEY_TYPES:
            raise InvalidRequest(f"unknown key type: {key_type}")
        if fd.get("convergent_encryption"):
            raise InvalidRequest("import cannot be used on keys with convergent encryption enabled")
        period = check_rotate_period(fd.get("auto_rotate_period"))
        material = _unwrap(b, await store.wrapping_key(), fd)
        async with store.lock(name):
            if await store.get(name) is not None:
                raise InvalidRequest("the import path cannot be used with an existing key; use import-version to "
                                     "rotate an existing imported key")
            p = Policy.create(name, key_type, derived=fd.get("derived"), exportable=fd.get("exportable"),
                              allow_plaintext_backup=fd.get("allow_plaintext_backup"), auto_rotate_period=period,
                              key_size=len(material) if key_type == "hmac" else 0, generate=False)
            p.imported = True
            p.allow_imported_key_rotation = fd.get("allow_rotation")
            p.rotate(material)
            await store.put(p)
        return None

    async def import_version(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        if fd.has("version"):
            # Vault uses it to add the private half to a public-only version; there are no public-only keys here
            raise InvalidRequest("'version' is not supported: every imported version is a new version")
        material = _unwrap(b, await store.wrapping_key(), fd)
        async with store.lock(name):
            p = await store.get(name, for_update=True)
            if p is None:
                raise InvalidRequest(f"no key found with name {name}; to import a new key, use the import/ endpoint")
            if not p.imported:
                raise InvalidRequest("the import_version endpoint can only be used with an imported key")
            if p.attestation is not None:
                raise InvalidRequest(f"key {name} is bound to an attestation policy: a version from outside would "
                                     "let its owner read what is encrypted under it")
            p.rotate(material)
            await store.put(p)
        return None

    async def wrapping_key(req: Request, fd: FieldData) -> Response | None:
        return Response(data={"public_key": crypto.wrapping_public_pem(await store.wrapping_key())})

    name = generic_name("name")
    import_version_fields = {k: IMPORT_FIELDS[k] for k in ("name", "ciphertext", "hash_function")}
    import_version_fields["version"] = Field(FieldType.INT, "Refused: an imported key is always a new version.")
    return [
        Path(pattern=r"keys/?", operations={Operation.LIST: list_keys}, summary="List the named keys."),
        Path(pattern=rf"keys/{name}", fields=CREATE_FIELDS,
             operations={Operation.UPDATE: create, Operation.READ: read, Operation.DELETE: delete},
             summary="Create, read or delete a named encryption key."),
        Path(pattern=rf"keys/{name}/config", fields=CONFIG_FIELDS, operations={Operation.UPDATE: config},
             summary="Configure a named encryption key."),
        Path(pattern=rf"keys/{name}/rotate", fields={"name": NAME}, operations={Operation.UPDATE: rotate},
             summary="Rotate a named encryption key."),
        Path(pattern=rf"keys/{name}/trim", operations={Operation.UPDATE: trim},
             fields={"name": NAME, "min_available_version": Field(FieldType.INT, "Versions below this are deleted.")},
             summary="Trim key versions of a named key."),
        Path(pattern=rf"keys/{name}/import", fields=IMPORT_FIELDS, operations={Operation.UPDATE: import_key},
             summary="Import a key wrapped with the mount's wrapping key."),
        Path(pattern=rf"keys/{name}/import_version", fields=import_version_fields,
             operations={Operation.UPDATE: import_version}, summary="Import a new version of an imported key."),
        Path(pattern=r"wrapping_key", operations={Operation.READ: wrapping_key},
             summary="The RSA-4096 public key that wraps keys for import."),
    ]
