"""The refusals of a ``write_once=true`` mount: a key, once it has a version, can only be read.

These checks run inside the engine, after the ACL, so no policy — not even root's — can lift them.
"""

from __future__ import annotations

import json

from strongroom.core.logical import InvalidRequest
from strongroom.engines.kv.storage import KeyMetadata

_PREFIX = "this mount is write-once: "


def quote(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def refuse_new_version(meta: KeyMetadata) -> None:
    if meta.current_version >= 1:
        raise InvalidRequest(
            f"{_PREFIX}version {meta.current_version} of {quote(meta.key)} already exists; write a new key instead"
        )


def refuse_delete(meta: KeyMetadata) -> None:
    """Soft delete, undelete and destroy of a key's versions."""
    raise InvalidRequest(f"{_PREFIX}versions of {quote(meta.key)} cannot be deleted, undeleted or destroyed")


def refuse_metadata_delete(meta: KeyMetadata) -> None:
    # A key that never received a version holds no secret; removing its bare metadata destroys nothing.
    if meta.current_version >= 1:
        raise InvalidRequest(f"{_PREFIX}{quote(meta.key)} and its version cannot be deleted")


def refuse_retention_change(meta: KeyMetadata, max_versions: int, delete_version_after: int) -> None:
    if max_versions != meta.max_versions or delete_version_after != meta.delete_version_after:
        raise InvalidRequest(f"{_PREFIX}max_versions and delete_version_after of {quote(meta.key)} cannot be changed")


def refuse_mount_expiry(delete_version_after: int) -> None:
    # A mount-wide delete_version_after would soft-delete every key's only version on a timer.
    if delete_version_after > 0:
        raise InvalidRequest(f"{_PREFIX}delete_version_after cannot be set")
