from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from strongroom.core.logical import InvalidRequest
from strongroom.framework.durations import parse_duration

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class FieldType(enum.StrEnum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    DURATION = "duration"  # seconds, from int or "1h"
    MAP = "map"  # JSON object
    STRING_MAP = "string_map"  # JSON object of strings
    STRING_LIST = "string_list"  # list of strings
    COMMA_STRING_LIST = "comma_string_list"  # list, or "a,b" string
    INT_LIST = "int_list"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class Field:
    type: FieldType = FieldType.STRING
    description: str = ""
    default: Any = None
    required: bool = False
    allowed: tuple[Any, ...] | None = None
    # from the URL pattern rather than the body
    in_path: bool = False


def _coerce(name: str, ftype: FieldType, value: Any) -> Any:
    def bad() -> InvalidRequest:
        return InvalidRequest(f"error converting input for field {name!r}: expected {ftype.value}")

    if ftype is FieldType.ANY:
        return value
    if ftype is FieldType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or value is None or isinstance(value, dict | list):
            raise bad()
        if isinstance(value, int | float):
            return str(value)
        raise bad()
    if ftype is FieldType.INT:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise bad() from None
        else:
            raise bad()
        # Vault's ints are Go int64: anything wider would fail later in storage or arithmetic, as a 500
        if not INT64_MIN <= number <= INT64_MAX:
            raise InvalidRequest(f"error converting input for field {name!r}: {value!s:.40} is out of range")
        return number
    if ftype is FieldType.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "t", "f"):
            return value.lower() in ("true", "1", "t")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad()
    if ftype is FieldType.DURATION:
        try:
            seconds = parse_duration(value)
        except (ValueError, OverflowError):
            raise bad() from None
        if seconds > INT64_MAX // 1_000_000_000:  # Vault's durations are int64 nanoseconds
            raise InvalidRequest(f"error converting input for field {name!r}: duration out of range")
        return seconds
    if ftype is FieldType.MAP:
        if isinstance(value, dict):
            return value
        raise bad()
    if ftype is FieldType.STRING_MAP:
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
        raise bad()
    if ftype in (FieldType.STRING_LIST, FieldType.COMMA_STRING_LIST):
        # Vault accepts a comma-separated string for list fields; list items are split only for comma lists
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            if ftype is FieldType.STRING_LIST:
                return list(value)
            return [p.strip() for v in value for p in v.split(",") if p.strip()]
        raise bad()
    if ftype is FieldType.INT_LIST:
        if isinstance(value, list):
            return [_coerce(name, FieldType.INT, v) for v in value]
        if isinstance(value, int | str):
            return [_coerce(name, FieldType.INT, v) for v in str(value).split(",") if v.strip()]
        raise bad()
    raise bad()


class FieldData:
    """The request's input, validated against a path's declared fields before any handler runs."""

    __slots__ = ("_schema", "_values", "raw")

    def __init__(self, schema: dict[str, Field], raw: dict[str, Any], params: dict[str, str]) -> None:
        self._schema = schema
        self.raw = raw
        values: dict[str, Any] = {}
        for name, value in params.items():
            f = schema.get(name)
            values[name] = _coerce(name, f.type, value) if f is not None else value
        for name, value in raw.items():
            if name in params:
                continue
            f = schema.get(name)
            # JSON null means "not given", as Vault's clients send it. A field that belongs in the URL is never
            # taken from the body: the ACL authorised the URL, so the body must not be able to change what it names.
            if f is None or value is None or f.in_path:
                continue
            coerced = _coerce(name, f.type, value)
            if f.allowed is not None and coerced not in f.allowed:
                raise InvalidRequest(
                    f"invalid value for field {name!r}: must be one of {', '.join(map(str, f.allowed))}"
                )
            values[name] = coerced
        self._values = values

    def validate_required(self) -> None:
        for name, f in self._schema.items():
            if f.required and name not in self._values:
                raise InvalidRequest(f"missing required field {name!r}" if not f.in_path else f"missing {name}")

    def get(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        f = self._schema.get(name)
        if f is None:
            raise KeyError(f"field {name!r} is not declared")
        default = f.default
        if isinstance(default, list | dict):
            return type(default)(default)
        return default

    def get_ok(self, name: str) -> tuple[Any, bool]:
        if name in self._values:
            return self._values[name], True
        return self.get(name), False

    def has(self, name: str) -> bool:
        return name in self._values

    def unknown(self) -> list[str]:
        return sorted(k for k in self.raw if k not in self._schema)
