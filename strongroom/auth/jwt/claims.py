"""Reading claims the way Vault's jwt plugin does: plain names or JSON pointers, bound claims, metadata mappings."""

from __future__ import annotations

from typing import Any

from strongroom.auth.jwtutil import TokenError, glob_match


def get_claim(claims: dict[str, Any], name: str, pointer: bool | None = None) -> Any:
    """``name`` is a JSON pointer when it starts with '/' (or when ``pointer`` says so), else a top-level key."""
    if pointer is None:
        pointer = name.startswith("/")
    if not pointer:
        return claims.get(name)
    value: Any = claims
    for part in name.lstrip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def validate_bound_claims(bound: dict[str, Any], claims: dict[str, Any], glob: bool) -> None:
    for name, expected in bound.items():
        actual = get_claim(claims, name)
        if actual is None:
            raise TokenError(f'claim "{name}" is missing')
        actual_values = actual if isinstance(actual, list) else [actual]
        if not all(isinstance(v, str | int | float | bool) for v in actual_values):
            raise TokenError(f"received claim is not a string or list: {name}")
        expected_values = expected if isinstance(expected, list) else [expected]
        if glob:
            ok = any(isinstance(a, str) and glob_match(e, a) for e in expected_values for a in actual_values)
        else:
            ok = any(e == a for e in expected_values for a in actual_values)
        if not ok:
            raise TokenError(f'claim "{name}" does not match any associated bound claim values')


def extract_metadata(claims: dict[str, Any], mappings: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for source, target in mappings.items():
        value = get_claim(claims, source)
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise TokenError(f"error converting claim '{source}' to string")
        out[target] = value
    return out


def groups_from(claims: dict[str, Any], groups_claim: str) -> list[str]:
    raw = get_claim(claims, groups_claim)
    if raw is None:
        raise TokenError(f'failed to fetch groups: "{groups_claim}" claim not found in token')
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise TokenError(f'"{groups_claim}" claim could not be converted to string list')
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise TokenError(f"value {item!r} in groups claim could not be parsed as string")
        if item and item not in out:
            out.append(item)
    return out
