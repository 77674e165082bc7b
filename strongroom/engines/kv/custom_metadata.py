"""``custom_metadata``: Vault's conversion (weakly typed values to strings) and its limits, with its error strings."""

from __future__ import annotations

import json
from typing import Any

from strongroom.core.logical import InvalidRequest

MAX_KEYS = 64
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 512
ERROR_PREFIX = "custom_metadata validation failed"


def multierror(errors: list[str]) -> str:
    """go-multierror's text, which Vault returns verbatim for these validations."""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    return f"{len(errors)} errors occurred:\n\t" + "\n\t".join(f"* {e}" for e in errors) + "\n\n"


def _as_string(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise InvalidRequest(f"{ERROR_PREFIX}: value for key {_q(name)} must be a string")


def _q(text: str) -> str:
    # Go's %q: quoted, with control characters escaped
    return json.dumps(text, ensure_ascii=False)


def parse(raw: dict[str, Any], *, skip_nulls: bool = False) -> dict[str, str]:
    """The map as strings; ``skip_nulls`` keeps PATCH's ``null`` (remove this key) out of the result."""
    return {k: _as_string(k, v) for k, v in raw.items() if not (skip_nulls and v is None)}


def validate(metadata: dict[str, str]) -> None:
    if len(metadata) > MAX_KEYS:
        raise InvalidRequest(
            multierror([f"{ERROR_PREFIX}: payload must contain at most {MAX_KEYS} keys, provided {len(metadata)}"])
        )
    errors: list[str] = []
    for key in sorted(metadata):
        value = metadata[key]
        key_len, value_len = len(key.encode()), len(value.encode())
        if key_len == 0 or key_len > MAX_KEY_LENGTH:
            errors.append(
                f"{ERROR_PREFIX}: length of key {_q(key)} is {key_len} but must be 0 < len(key) <= {MAX_KEY_LENGTH}"
            )
        if value_len == 0 or value_len > MAX_VALUE_LENGTH:
            errors.append(
                f"{ERROR_PREFIX}: length of value for key {_q(key)} is {value_len} but must be "
                f"0 < len(value) <= {MAX_VALUE_LENGTH}"
            )
        if not key.isprintable():
            errors.append(f"{ERROR_PREFIX}: key {_q(key)} ({key}) contains unprintable characters")
        if not value.isprintable():
            errors.append(f"{ERROR_PREFIX}: value for key {_q(key)} contains unprintable characters")
    if errors:
        raise InvalidRequest(multierror(errors))
