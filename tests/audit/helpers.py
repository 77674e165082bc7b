from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from strongroom.audit import AuditContext

SECRET = "s3cr3t-Value-that-must-never-leak"
TOKEN = "hvs.CAESIJ-very-secret-root-token-xyz"
ACCESSOR = "accessor-abcdef123456"


def context(**overrides: Any) -> AuditContext:
    values: dict[str, Any] = {
        "request_id": "req-1",
        "operation": "update",
        "path": "secret/data/app",
        "mount_point": "secret/",
        "mount_type": "kv",
        "mount_accessor": "kv_1234abcd",
        "remote_addr": "127.0.0.1",
        "data": {"data": {"password": SECRET, "nested": [SECRET, {"pin": 4711}], "flag": True}},
        "client_token": TOKEN,
        "accessor": ACCESSOR,
        "display_name": "token-alice",
        "policies": ["default", "writer"],
        "token_policies": ["default", "writer"],
        "entity_id": "entity-1",
        "token_type": "service",
        "ttl": 3600,
    }
    values.update(overrides)
    return AuditContext(**values)


def read_entries(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)
