"""``subkeys/<path>``: the shape of a version's data with every value replaced by ``null``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, LogicalError, Operation, Request, Response
from strongroom.engines.kv.common import requested_version
from strongroom.engines.kv.storage import now_ns, validate_key_path
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.kv.backend import KVBackend

# Vault's maxSubkeysDepth: beyond it every map is a leaf, so arbitrarily deep data cannot exhaust the stack.
MAX_DEPTH = 100

FIELDS = {
    "path": Field(FieldType.STRING, "Location of the secret.", in_path=True),
    "version": Field(FieldType.INT, "Which version to read. If not provided, the current version is used."),
    "depth": Field(
        FieldType.INT,
        "The deepest nesting level to return; keys at this depth are leaves (null). 0 imposes no limit.",
        default=0,
    ),
}


def strip_values(data: dict[str, Any], max_depth: int) -> dict[str, Any]:
    """A copy of ``data`` keeping only keys: non-empty maps above ``max_depth`` recurse, everything else is null."""

    def walk(node: dict[str, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in node.items():
            if isinstance(value, dict) and value and depth + 1 <= max_depth:
                out[name] = walk(value, depth + 1)
            else:
                out[name] = None
        return out

    return walk(data, 1)


def paths(b: KVBackend) -> list[Path]:
    async def read(req: Request, fd: FieldData) -> Response | None:
        key = validate_key_path(fd.get("path"))
        depth = fd.get("depth") or 0
        if depth < 0:
            raise InvalidRequest("depth must be a non-negative integer")
        store = b.store(req)
        meta, number, vm = await requested_version(store, key, fd)
        body: dict[str, Any] = {"subkeys": None, "metadata": meta.version_summary(number)}
        if not vm.is_live(now_ns()):
            return Response(data=body, status=404)
        data = await store.version_data(key, number)
        if data is None:
            raise LogicalError("could not find version data", status=500)
        body["subkeys"] = strip_values(data, min(depth, MAX_DEPTH) if depth else MAX_DEPTH)
        return Response(data=body)

    return [
        Path(
            pattern=r"subkeys/(?P<path>.+)",
            fields=FIELDS,
            operations={Operation.READ: read},
            summary="Read the structure of a secret with its values removed.",
        )
    ]
