"""The interface every database plugin implements, and the statement helpers they share.

Mirrors Vault's ``dbplugin.Database``: initialize with connection details, create a user from creation statements,
renew and revoke it, rotate the plugin's own (root) password, close. Statements are templates; ``{{username}}``
(also ``{{name}}``), ``{{password}}`` and ``{{expiration}}`` are substituted by the plugin. Errors carry no secret:
anything the database echoes back has the password scrubbed before it becomes a :class:`PluginError`.
"""

from __future__ import annotations

import abc
import datetime as dt
import re
from typing import Any
from urllib.parse import quote, unquote, urlsplit


class PluginError(Exception):
    """A database operation failed; the message is safe to show a client and to log."""


def split_statements(statements: list[str], keep_dollar_quoted: bool = False) -> list[str]:
    """Each item may hold several statements separated by ``;`` (Vault's convention)."""
    out: list[str] = []
    for item in statements:
        if keep_dollar_quoted and "$$" in item:
            # a PL/pgSQL body contains semicolons of its own: run it as one statement
            if item.strip():
                out.append(item.strip())
            continue
        out.extend(part.strip() for part in item.split(";") if part.strip())
    return out


def render(statement: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        statement = statement.replace("{{" + key + "}}", value)
    return statement


# a URL's userinfo (``scheme://user:pass@``), a DSN's ``password=...`` (quoted or not), and any whole URL that names
# credentials: a driver may echo any of them back in an error about a malformed connection string
_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/@\s]*@")
_KEY_VALUE = re.compile(r"""(?i)\b(password|passwd|pwd|sslpassword)(\s*=\s*)('(?:[^'\\]|\\.)*'?|"[^"]*"?|[^\s&;,]*)""")
_URL = re.compile(r"(?i)\b(?:postgres(?:ql)?|cassandra|cql|https?)://\S+")


def connection_secrets(config: dict[str, Any]) -> list[str]:
    """Every spelling of a secret that a connection config holds: the password, and the connection URL/DSN with the
    password parts inside it (raw and percent-decoded), so an error quoting any fragment of them can be scrubbed."""
    found: list[str] = []
    for key in ("password", "pem_bundle", "connection_url"):
        value = config.get(key)
        if isinstance(value, str) and value:
            found.append(value)
    url = config.get("connection_url")
    if isinstance(url, str) and url:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        # a malformed URL may not split: take whatever sits between the first ":" after "//" and the last "@"
        m = re.search(r"//[^:/@]*:(.*)@", url)
        for candidate in (password, m.group(1) if m else None):
            if candidate:
                found += [candidate, unquote(candidate)]
        for m2 in _KEY_VALUE.finditer(url):
            value = m2.group(3).strip("'\"")
            if value:
                found.append(value)
    return found


def scrub(message: str, *secrets_: str) -> str:
    """``message`` without any of ``secrets_`` (in any common encoding), URL userinfo, DSN passwords or credentialed
    URLs; every error a plugin raises passes through here before anyone can see it."""
    spellings: set[str] = set()
    for s in secrets_:
        if s and len(s) >= 3:
            spellings |= {s, quote(s, safe=""), s.replace("\\", "\\\\").replace("'", "\\'"), repr(s)[1:-1]}
        elif s:
            spellings.add(s)
    for s in sorted(spellings, key=len, reverse=True):
        if s:
            message = message.replace(s, "<redacted>")
    message = _URL.sub("<connection url>", message)
    message = _USERINFO.sub(r"\1<redacted>@", message)
    message = _KEY_VALUE.sub(r"\1\2<redacted>", message)
    return message[:500]


def scrubbed_error(prefix: str, exc: BaseException, config: dict[str, Any], *secrets_: str) -> PluginError:
    """The one way a plugin turns a driver's exception into a :class:`PluginError`: scrubbed of the connection's
    secrets and of anything that looks like one."""
    return PluginError(f"{prefix}{scrub(str(exc), *secrets_, *connection_secrets(config))}")


def expiration_text(expiration: dt.datetime | None) -> str:
    if expiration is None:
        return "infinity"
    return expiration.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")


class DatabasePlugin(abc.ABC):
    """One connection (one ``config/<name>``) to one database."""

    plugin_name: str = ""
    # longest role name the database accepts; the username template is truncated to it
    username_limit: int = 100
    default_username_template: str = "v_{{display_name:15}}_{{role_name:15}}_{{random:20}}_{{unix_time}}"
    default_creation: list[str] = []
    default_revocation: list[str] = []
    default_rollback: list[str] = []
    default_renew: list[str] = []
    default_root_rotation: list[str] = []
    # connection fields a read of config/<name> may return (never the password)
    public_fields: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ("password",)
    _config: dict[str, Any]

    def error(self, prefix: str, exc: BaseException, *secrets_: str) -> PluginError:
        """``exc`` as a :class:`PluginError` scrubbed of this connection's secrets and of ``secrets_``."""
        return scrubbed_error(prefix, exc, getattr(self, "_config", {}) or {}, *secrets_)

    @abc.abstractmethod
    async def initialize(self, config: dict[str, Any], verify: bool) -> dict[str, Any]:
        """Validate ``config`` (raise :class:`PluginError`), connect when ``verify``; return the config to store."""

    @abc.abstractmethod
    async def new_user(
        self,
        statements: list[str],
        username: str,
        password: str,
        expiration: dt.datetime | None,
        rollback_statements: list[str] | None = None,
    ) -> None:
        """Create the user. On failure undo whatever part of it happened, then raise."""

    @abc.abstractmethod
    async def delete_user(self, statements: list[str], username: str) -> None:
        """Drop the user; must succeed when the user is already gone, so a retried revocation never sticks."""

    @abc.abstractmethod
    async def renew_user(self, statements: list[str], username: str, expiration: dt.datetime | None) -> None:
        """Extend the user's life in the database, where the database has such a notion."""

    @abc.abstractmethod
    async def rotate_root(self, statements: list[str], new_password: str) -> dict[str, Any]:
        """Change the plugin's own password to ``new_password``; return the config fields that changed."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; the plugin may be initialized again afterwards."""
