"""``export/<type>/<name>[/<version>]``, ``backup/<name>`` and ``restore[/<name>]``.

Private material leaves only for keys created ``exportable`` (public keys always may); a backup additionally needs
``allow_plaintext_backup``. A backup is Vault's format (see ``backup.py``): it restores on Vault, and Vault's
backups restore here.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.engines.transit import backup as backup_format
from strongroom.engines.transit.keys import EXPORT_TYPES, rfc3339
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import NAME as NAME_RE
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.transit.backend import TransitBackend

NAME = Field(FieldType.STRING, "Name of the key", in_path=True, required=True)
EXPORT_FIELDS = {
    "name": NAME,
    "type": Field(FieldType.STRING, "encryption-key, signing-key, hmac-key or public-key.", in_path=True),
    "version": Field(FieldType.STRING, "Version to export ('latest' or a number); all when absent.", in_path=True),
}
RESTORE_FIELDS = {
    "name": Field(FieldType.STRING, "Name to restore the key under (default: the name in the backup).",
                  in_path=True),
    "backup": Field(FieldType.STRING, "The backup, as returned by backup/<name>."),
    "force": Field(FieldType.BOOL, "Overwrite an existing key of that name.", default=False),
}


def paths(b: TransitBackend) -> list[Path]:
    store = b.keys

    async def export(req: Request, fd: FieldData) -> Response | None:
        export_type = fd.get("type")
        if export_type not in EXPORT_TYPES:
            raise InvalidRequest(f"invalid export type: {export_type}")
        p = await store.get(fd.get("name"))
        if p is None:
            raise NotFound()
        if export_type != "public-key" and not p.exportable:
            raise InvalidRequest("private key material is not exportable")
        raw_version = fd.get("version")
        if raw_version in (None, ""):
            versions = [v for v in sorted(p.keys) if v >= p.min_decryption_version]
        else:
            if raw_version == "latest":
                version = p.latest_version
            else:
                try:
                    version = int(raw_version)
                except ValueError:
                    raise InvalidRequest("invalid key version") from None
            if version not in p.keys or version < p.min_decryption_version:
                raise InvalidRequest("version does not exist or cannot be found")
            versions = [version]
        keys = {str(v): p.export(export_type, v) for v in versions}
        return Response(data={"name": p.name, "type": p.type, "keys": keys})

    async def backup(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        async with store.lock(name):
            p = await store.get(name, for_update=True)
            if p is None:
                raise InvalidRequest(f"key {name!r} not found")
            p.refuse_if_bound()
            if not p.exportable:
                raise InvalidRequest("exporting is disallowed on the policy")
            if not p.allow_plaintext_backup:
                raise InvalidRequest("plaintext backup is disallowed on the policy")
            p.backup_info = {"time": rfc3339(time.time()), "version": p.latest_version}
            await store.put(p)
        return Response(data={"backup": backup_format.to_vault(p)})

    async def restore(req: Request, fd: FieldData) -> Response | None:
        raw = fd.get("backup")
        if not raw:
            raise InvalidRequest("'backup' must be supplied")
        try:
            policy = backup_format.from_vault(raw)
        except backup_format.BackupError as exc:
            raise InvalidRequest(f"failed to restore the policy: {exc}") from None
        name = fd.get("name") or policy.name
        if not re.fullmatch(NAME_RE, name):
            raise InvalidRequest("invalid key name")
        policy.name = name
        policy.restore_info = {"time": rfc3339(time.time()), "version": policy.latest_version}
        async with store.lock(name):
            existing = await store.get(name)
            if existing is not None and not fd.get("force"):
                raise InvalidRequest(f'key "{name}" already exists')
            if existing is not None and existing.attestation is not None:
                # a restore would drop the binding and bring back material that may have been exported
                raise InvalidRequest(f'key "{name}" is bound to an attestation policy and cannot be restored over')
            await store.put(policy)
        return None

    name = generic_name("name")
    return [
        Path(pattern=rf"export/(?P<type>[\w-]+)/{name}(/(?P<version>{NAME_RE}))?", fields=EXPORT_FIELDS,
             operations={Operation.READ: export}, summary="Export a named key's versions."),
        Path(pattern=rf"backup/{name}", fields={"name": NAME}, operations={Operation.READ: backup},
             summary="Back up a named key (plaintext; needs exportable and allow_plaintext_backup)."),
        Path(pattern=rf"restore(/{name})?", fields=RESTORE_FIELDS, operations={Operation.UPDATE: restore},
             summary="Restore a key from a backup."),
    ]
