"""The shapes every backend speaks: a logical request, its response, and the errors that map to Vault's status codes.

Backends (engines, auth methods, the sys backend) receive a :class:`Request` and return a :class:`Response` or raise a
:class:`LogicalError`. They never see HTTP, tokens' secret IDs, audit or leases: the pipeline in
:mod:`strongroom.core.pipeline` does that for all of them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView


class Operation(enum.StrEnum):
    READ = "read"
    CREATE = "create"
    UPDATE = "update"
    PATCH = "patch"
    DELETE = "delete"
    LIST = "list"
    # internal operations used by the expiration manager
    RENEW = "renew"
    REVOKE = "revoke"
    ROLLBACK = "rollback"
    HELP = "help"


# --- errors ------------------------------------------------------------------------------------------------------


class LogicalError(Exception):
    """An error with an HTTP status and messages that are safe to show the client (never a secret)."""

    status = 500

    def __init__(self, *messages: str, status: int | None = None) -> None:
        super().__init__(*messages)
        self.messages = list(messages)
        if status is not None:
            self.status = status


class InvalidRequest(LogicalError):
    status = 400


class PermissionDenied(LogicalError):
    status = 403

    def __init__(self, *messages: str) -> None:
        super().__init__(*(messages or ("permission denied",)))


class UnsupportedPath(LogicalError):
    status = 404

    def __init__(self, *messages: str) -> None:
        super().__init__(*(messages or ("unsupported path",)))


class UnsupportedOperation(LogicalError):
    status = 405

    def __init__(self, *messages: str) -> None:
        super().__init__(*(messages or ("unsupported operation",)))


class Sealed(LogicalError):
    status = 503

    def __init__(self) -> None:
        super().__init__("Vault is sealed")


class NotFound(LogicalError):
    """404 with no messages: Vault's answer for a read of nothing."""

    status = 404

    def __init__(self, *messages: str) -> None:
        super().__init__(*messages)


# --- request / response --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class EntityAlias:
    """What an auth method says about the caller's identity at login; the identity store turns it into an entity."""

    name: str
    metadata: dict[str, str] = field(default_factory=dict)
    custom_metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Auth:
    """A login result (or a token to create) returned by an auth backend; the token store turns it into a token."""

    policies: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    display_name: str = ""
    ttl: int = 0
    max_ttl: int = 0
    explicit_max_ttl: int = 0
    period: int = 0
    num_uses: int = 0
    renewable: bool = True
    no_default_policy: bool = False
    alias: EntityAlias | None = None
    group_aliases: list[str] = field(default_factory=list)
    internal_data: dict[str, Any] = field(default_factory=dict)
    token_type: str = "service"  # noqa: S105 - a token kind, not a secret
    bound_cidrs: list[str] = field(default_factory=list)
    entity_id: str = ""
    # filled in by the token store when the token exists
    client_token: str = ""
    accessor: str = ""
    token_policies: list[str] = field(default_factory=list)
    identity_policies: list[str] = field(default_factory=list)
    orphan: bool = False


@dataclass(slots=True)
class Secret:
    """A lease-bearing result (dynamic credentials). ``internal_data`` is kept for the backend's renew/revoke."""

    lease_type: str
    ttl: int
    max_ttl: int = 0
    renewable: bool = True
    internal_data: dict[str, Any] = field(default_factory=dict)
    lease_id: str = ""


@dataclass(slots=True)
class Caller:
    """Who is making the request, as the backend may know it. Never holds the token's secret ID."""

    token_accessor: str = ""
    token_hash: str = ""  # a per-cluster salted hash; stable per token, useless to an attacker
    display_name: str = ""
    entity_id: str = ""
    policies: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    is_root: bool = False


@dataclass(slots=True)
class Request:
    operation: Operation
    path: str  # relative to the mount
    data: dict[str, Any] = field(default_factory=dict)
    storage: BarrierView | None = None
    mount_point: str = ""
    mount_accessor: str = ""
    mount_type: str = ""
    caller: Caller = field(default_factory=Caller)
    remote_addr: str = ""
    request_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    # set by the framework from the matched path pattern
    params: dict[str, str] = field(default_factory=dict)
    secret: Secret | None = None  # for renew/revoke
    auth: Auth | None = None  # for auth renew
    # the full path as the client sent it (mount + relative), for messages
    full_path: str = ""
    # the caller's token secret: given only to the token store's own backend (lookup-self returns it as Vault does)
    client_token: str = ""

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.params:
            return self.params[name]
        return self.data.get(name, default)


@dataclass(slots=True)
class Response:
    data: dict[str, Any] | None = None
    secret: Secret | None = None
    auth: Auth | None = None
    warnings: list[str] = field(default_factory=list)
    # a non-200 status that still carries the envelope (KV v2: 404 for a deleted version)
    status: int | None = None
    # a raw body that bypasses the envelope (bare sys objects, PEM, HTML)
    raw_body: bytes | None = None
    raw_content_type: str = "application/json"
    # keys in data to copy to the top level of the JSON (Vault's sys route injection)
    inject_top_level: bool = False

    @classmethod
    def list_keys(cls, keys: list[str], **extra: Any) -> Response:
        if not keys:
            raise NotFound()
        return cls(data={"keys": keys, **extra})
