from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from strongroom.core.logical import Operation, Request, Response
from strongroom.framework.fields import Field, FieldData

Handler = Callable[[Request, FieldData], Awaitable[Response | None]]
ExistenceCheck = Callable[[Request, FieldData], Awaitable[bool]]

# Pattern helpers in Vault's spirit
NAME = r"\w(([\w-]|\.)*\w)?"


def generic_name(group: str) -> str:
    return rf"(?P<{group}>{NAME})"


@dataclass
class Path:
    """One group of paths of a backend: pattern (a full-match regex), typed fields, handlers per operation."""

    pattern: str
    operations: dict[Operation, Handler]
    fields: dict[str, Field] = field(default_factory=dict)
    existence_check: ExistenceCheck | None = None
    summary: str = ""
    description: str = ""
    # Vault's PathsSpecial: root-protected (needs sudo) and unauthenticated patterns
    sudo: bool = False
    unauthenticated: bool = False
    # any valid token may call it: authenticated and audited, but no policy grant is asked; the handler decides what
    # the caller may learn (Vault's sys/internal/ui paths)
    any_token: bool = False
    # field names whose values are secrets beyond the default HMAC of all strings (documentation only today)
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.pattern)

    def match(self, path: str) -> dict[str, str] | None:
        m = self._regex.fullmatch(path)
        if m is None:
            return None
        return {k: v for k, v in m.groupdict().items() if v is not None and k in self.fields}

    def openapi(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "description": self.description,
            "operations": sorted(op.value for op in self.operations),
            "fields": {n: {"type": f.type.value, "description": f.description} for n, f in self.fields.items()},
        }


def collection_paths(
    prefix: str,
    fields: dict[str, Field],
    *,
    write: Handler,
    read: Handler,
    delete: Handler,
    list_: Handler,
    exists: ExistenceCheck,
    summary: str,
    list_summary: str,
) -> list[Path]:
    """``<prefix>/`` (list) and ``<prefix>/<name>`` (create, update, read, delete): a collection of named records,
    such as an engine's roles or connections."""
    return [
        Path(pattern=rf"{prefix}/?", operations={Operation.LIST: list_}, summary=list_summary),
        Path(
            pattern=rf"{prefix}/{generic_name('name')}",
            fields=fields,
            operations={
                Operation.CREATE: write,
                Operation.UPDATE: write,
                Operation.READ: read,
                Operation.DELETE: delete,
            },
            existence_check=exists,
            summary=summary,
        ),
    ]
