"""Export: the live configuration as files that ``plan`` reports as no change.

No secret is ever written: where the server holds one (a database root password, a userpass password, a reviewer JWT)
the file names an environment variable instead, ``env("STRONGROOM_…")``, to be set when the object is next created.
Policies go to ``policies/<name>.hcl``, referenced from ``policies.hcl``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from strongroom.config_as_code.hcl import ConfigError, SecretRef, block_hcl
from strongroom.config_as_code.kinds import KINDS, Fields, Key

_FILES = {
    "audit": "audit.hcl", "secrets_engine": "mounts.hcl", "auth_method": "mounts.hcl", "auth_config": "auth.hcl",
    "auth_role": "auth.hcl", "auth_user": "auth.hcl", "policy": "policies.hcl", "token_role": "token_roles.hcl",
    "identity_group": "identity.hcl", "identity_group_alias": "identity.hcl", "database_connection": "database.hcl",
    "database_role": "database.hcl", "transit_key": "transit.hcl", "pki_role": "pki.hcl",
}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _env_name(*parts: str) -> str:
    return "STRONGROOM_" + "_".join(re.sub(r"[^A-Za-z0-9]", "_", p).upper() for p in parts)


def _body(kind: str, key: Key, fields: Fields) -> dict[str, Any]:
    body: dict[str, Any] = {k: v for k, v in fields.items() if not k.startswith("_") and v is not None}
    if kind in ("database_connection", "auth_user"):
        body["password"] = SecretRef("env", _env_name(*key, "password"))
    if kind == "auth_config":
        for flag, value in fields.items():
            if flag.startswith("_") and flag.endswith("_set") and value:
                secret = flag[1:].removesuffix("_set")
                body[secret] = SecretRef("env", _env_name(*key, secret))
    return body


def write(directory: str, current: dict[tuple[str, Key], Fields], force: bool) -> list[str]:
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    if not force and any(base.glob("*.hcl")):
        raise ConfigError(f"{directory} already holds .hcl files (use --force to overwrite them)")
    texts: dict[str, list[str]] = {}
    order = {k.name: i for i, k in enumerate(KINDS)}
    for (kind, key), fields in sorted(current.items(), key=lambda item: (order[item[0][0]], item[0][1])):
        if kind == "policy":
            rel = f"policies/{_SAFE.sub('_', key[0])}.hcl"
            (base / "policies").mkdir(exist_ok=True)
            (base / rel).write_text(fields["policy"], encoding="utf-8")
            body: dict[str, Any] = {"file": rel}
        else:
            body = _body(kind, key, fields)
        texts.setdefault(_FILES[kind], []).append(block_hcl(kind, key, body))
    written = []
    for name, blocks in sorted(texts.items()):
        (base / name).write_text("\n".join(blocks), encoding="utf-8")
        written.append(name)
    return written
