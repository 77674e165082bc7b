"""The server configuration file, in Vault's format (HCL, or JSON), validated strictly: unknown stanzas are errors."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

_TOP_KEYS = {
    "storage",
    "listener",
    "api_addr",
    "cluster_addr",
    "ui",
    "disable_mlock",
    "log_level",
    "default_lease_ttl",
    "max_lease_ttl",
    "cluster_name",
    "pid_file",
}
_LISTENER_KEYS = {
    "address",
    "tls_disable",
    "tls_cert_file",
    "tls_key_file",
    "tls_min_version",
    "max_request_size",
    "tls_client_ca_file",
}
_STORAGE_KEYS = {"sqlite": {"path"}, "postgresql": {"connection_url", "table", "ha_enabled"}}
_LOG_LEVELS = {"trace", "debug", "info", "warn", "warning", "error"}


class ConfigError(Exception):
    """A start-up error with a message a person can act on."""


@dataclass
class Listener:
    address: str = "127.0.0.1:8200"
    tls_disable: bool = False
    tls_cert_file: str = ""
    tls_key_file: str = ""
    max_request_size: int = 32 * 1024 * 1024

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"listener address {self.address!r} must be host:port")
        return host.strip("[]"), int(port)


@dataclass
class ServerConfig:
    storage_type: str = "sqlite"
    storage: dict[str, Any] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    api_addr: str = ""
    ui: bool = False
    disable_mlock: bool = True
    log_level: str = "info"


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _blocks(doc: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    raw = doc.get(name)
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f'{name} must be a block like {name} "type" {{ ... }}')
        ((label, body),) = item.items()
        if not isinstance(body, dict):
            raise ConfigError(f'{name} "{label}" must be a block')
        out.append((label, body))
    return out


def parse(text: str, *, filename: str = "config") -> ServerConfig:
    try:
        if filename.endswith(".json"):
            doc = orjson.loads(text)
        else:
            import hcl2

            doc = _unquote(hcl2.loads(text))
    except Exception as exc:  # the parser's own message says where the syntax error is
        raise ConfigError(
            f"{filename}: cannot parse: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{filename}: the configuration must be a set of stanzas")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{filename}: unknown stanza(s): {', '.join(unknown)}")
    cfg = ServerConfig()
    storages = _blocks(doc, "storage")
    if len(storages) != 1:
        raise ConfigError(
            f'{filename}: exactly one storage stanza is required, e.g. storage "sqlite" {{ path = "..." }}'
        )
    stype, sbody = storages[0]
    if stype not in _STORAGE_KEYS:
        raise ConfigError(f"{filename}: unknown storage type {stype!r} (supported: {', '.join(_STORAGE_KEYS)})")
    bad = sorted(set(sbody) - _STORAGE_KEYS[stype])
    if bad:
        raise ConfigError(f'{filename}: unknown key(s) in storage "{stype}": {", ".join(bad)}')
    if stype == "sqlite" and not isinstance(sbody.get("path"), str):
        raise ConfigError(f'{filename}: storage "sqlite" needs path = "/some/file.db"')
    if stype == "postgresql" and not isinstance(sbody.get("connection_url"), str):
        raise ConfigError(f'{filename}: storage "postgresql" needs connection_url = "postgresql://..."')
    cfg.storage_type, cfg.storage = stype, sbody
    listeners = _blocks(doc, "listener")
    if not listeners:
        raise ConfigError(f'{filename}: at least one listener "tcp" {{ ... }} stanza is required')
    for ltype, lbody in listeners:
        if ltype != "tcp":
            raise ConfigError(f"{filename}: unknown listener type {ltype!r} (supported: tcp)")
        bad = sorted(set(lbody) - _LISTENER_KEYS)
        if bad:
            raise ConfigError(f'{filename}: unknown key(s) in listener "tcp": {", ".join(bad)}')
        lst = Listener(
            address=str(lbody.get("address", "127.0.0.1:8200")),
            tls_disable=_bool("tls_disable", lbody.get("tls_disable", False)),
            tls_cert_file=str(lbody.get("tls_cert_file", "")),
            tls_key_file=str(lbody.get("tls_key_file", "")),
        )
        if "max_request_size" in lbody:
            try:
                lst.max_request_size = int(lbody["max_request_size"])
            except (TypeError, ValueError):
                raise ConfigError(f"{filename}: max_request_size must be a number of bytes") from None
        lst.host_port  # noqa: B018  (validates)
        if not lst.tls_disable:
            if not lst.tls_cert_file or not lst.tls_key_file:
                raise ConfigError(f"{filename}: TLS is on: set tls_cert_file and tls_key_file, or tls_disable = true")
            for f in (lst.tls_cert_file, lst.tls_key_file):
                if not os.path.isfile(f):
                    raise ConfigError(f"{filename}: TLS file not found: {f}")
        cfg.listeners.append(lst)
    cfg.api_addr = str(doc.get("api_addr", ""))
    cfg.ui = _bool("ui", doc.get("ui", False))
    cfg.disable_mlock = _bool("disable_mlock", doc.get("disable_mlock", True))
    level = str(doc.get("log_level", "info")).lower()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{filename}: log_level must be one of {', '.join(sorted(_LOG_LEVELS))}")
    cfg.log_level = level
    return cfg


def load(path: str) -> ServerConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    return parse(text, filename=path)
