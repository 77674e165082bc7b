"""The server configuration file, in Vault's format (HCL, or JSON), validated strictly: unknown stanzas are errors."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from strongroom.framework.durations import parse_duration

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
    "telemetry",
    "workers",
}
_LISTENER_KEYS = {
    "address",
    "tls_disable",
    "tls_cert_file",
    "tls_key_file",
    "tls_min_version",
    "max_request_size",
    "tls_client_ca_file",
    "telemetry",
}
_TELEMETRY_KEYS = {"prometheus_retention_time", "disable_hostname"}
_LISTENER_TELEMETRY_KEYS = {"unauthenticated_metrics_access"}
PROMETHEUS_DEFAULT_RETENTION = 24 * 3600  # Vault's default once a telemetry stanza exists, and dev mode's
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
    # listener "tcp" { telemetry { unauthenticated_metrics_access = true } }: sys/metrics needs no token (nor unseal)
    unauthenticated_metrics_access: bool = False

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"listener address {self.address!r} must be host:port")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Telemetry:
    """The ``telemetry`` stanza. Without one, as in Vault, only the JSON format is served (retention 0: Prometheus
    off); a stanza without ``prometheus_retention_time`` keeps Vault's default of 24h."""

    prometheus_retention_time: int = 0
    disable_hostname: bool = False


@dataclass
class ServerConfig:
    storage_type: str = "sqlite"
    storage: dict[str, Any] = field(default_factory=dict)
    listeners: list[Listener] = field(default_factory=list)
    api_addr: str = ""
    ui: bool = False
    disable_mlock: bool = True
    log_level: str = "info"
    telemetry: Telemetry = field(default_factory=Telemetry)
    workers: int = 1  # request processes of this node (strongroom/scaleout/); see the README for the default


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


def parse_document(text: str, filename: str) -> dict[str, Any]:
    """The stanzas of an HCL file, or of a JSON one when ``filename`` ends in ``.json``."""
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
    return doc


def parse(text: str, *, filename: str = "config") -> ServerConfig:
    doc = parse_document(text, filename)
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
        lst.unauthenticated_metrics_access = _listener_telemetry(filename, lbody.get("telemetry"))
        cfg.listeners.append(lst)
    cfg.api_addr = str(doc.get("api_addr", ""))
    cfg.ui = _bool("ui", doc.get("ui", False))
    cfg.disable_mlock = _bool("disable_mlock", doc.get("disable_mlock", True))
    workers = doc.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
        raise ConfigError(f"{filename}: workers must be a whole number from 1 to 256")
    cfg.workers = workers
    level = str(doc.get("log_level", "info")).lower()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"{filename}: log_level must be one of {', '.join(sorted(_LOG_LEVELS))}")
    cfg.log_level = level
    if "telemetry" in doc:
        cfg.telemetry = _telemetry(filename, doc["telemetry"])
    return cfg


def _single_block(filename: str, name: str, raw: Any) -> dict[str, Any]:
    # HCL gives a block as a one-element list, JSON as an object
    items = raw if isinstance(raw, list) else [raw]
    if len(items) != 1 or not isinstance(items[0], dict):
        raise ConfigError(f"{filename}: only one {name} {{ ... }} block is permitted")
    return items[0]


def _telemetry(filename: str, raw: Any) -> Telemetry:
    body = _single_block(filename, "telemetry", raw)
    bad = sorted(set(body) - _TELEMETRY_KEYS)
    if bad:
        supported = ", ".join(sorted(_TELEMETRY_KEYS))
        raise ConfigError(f"{filename}: unknown key(s) in telemetry: {', '.join(bad)} (supported: {supported})")
    retention = PROMETHEUS_DEFAULT_RETENTION
    if "prometheus_retention_time" in body:
        try:
            retention = parse_duration(body["prometheus_retention_time"])
        except ValueError:
            raise ConfigError(
                f'{filename}: telemetry prometheus_retention_time must be a duration such as "24h" or 0'
            ) from None
    return Telemetry(
        prometheus_retention_time=retention,
        disable_hostname=_bool("telemetry disable_hostname", body.get("disable_hostname", False)),
    )


def _listener_telemetry(filename: str, raw: Any) -> bool:
    if raw is None:
        return False
    body = _single_block(filename, 'listener "tcp" telemetry', raw)
    bad = sorted(set(body) - _LISTENER_TELEMETRY_KEYS)
    if bad:
        raise ConfigError(f'{filename}: unknown key(s) in listener "tcp" telemetry: {", ".join(bad)}')
    return _bool("unauthenticated_metrics_access", body.get("unauthenticated_metrics_access", False))


def load(path: str) -> ServerConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    return parse(text, filename=path)
