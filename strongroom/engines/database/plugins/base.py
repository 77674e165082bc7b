"""The interface every database plugin implements, and the statement helpers they share.

Mirrors Vault's ``dbplugin.Database``: initialize with connection details, create a user from creation statements,
renew and revoke it, rotate the plugin's own (root) password, close. Statements are templates; ``{{username}}``
(also ``{{name}}``), ``{{password}}`` and ``{{expiration}}`` are substituted by the plugin. Errors carry no secret:
anything the database echoes back has the password scrubbed before it becomes a :class:`PluginError`.
"""

from __future__ import annotations

import abc
import datetime as dt
from typing import Any


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


def scrub(message: str, *secrets_: str) -> str:
    for s in secrets_:
        if s:
            message = message.replace(s, "<redacted>")
    return message[:500]


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
