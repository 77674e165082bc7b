from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import (
    Operation,
    Request,
    Response,
    UnsupportedOperation,
    UnsupportedPath,
)
from strongroom.framework.fields import FieldData
from strongroom.framework.path import Path

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView

SecretHandler = Callable[[Request], Awaitable[Response | None]]


@dataclass
class SecretType:
    """A kind of lease a backend hands out, with the callbacks the expiration manager calls."""

    name: str
    revoke: SecretHandler
    renew: SecretHandler | None = None


@dataclass
class BackendContext:
    """What a mounted backend gets from the core: its own storage view, its mount's config and named services.

    ``services`` is how a backend reaches shared core facilities it genuinely needs (the identity store for the
    identity backend, the ServiceAccount source for dynamic database roles) without importing the core.
    """

    storage: BarrierView
    mount_path: str
    mount_type: str
    mount_accessor: str
    options: dict[str, str] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)


class Backend:
    """A secrets engine or auth method. Subclasses set ``paths`` (and ``secret_types``) in ``__init__``."""

    type: str = ""
    is_auth: bool = False

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self.paths: list[Path] = []
        self.secret_types: dict[str, SecretType] = {}

    @classmethod
    def validate_options(cls, options: dict[str, str]) -> None:
        """Refuse mount options this backend does not understand, before the mount table stores them."""

    async def initialize(self) -> None:
        """Called once after mount or unseal."""

    async def cleanup(self) -> None:
        """Called when the mount is removed or the core seals."""

    async def auth_renew(self, req: Request) -> Response | None:
        """Auth methods: called when a token from this mount is renewed; may refuse or adjust TTLs."""
        return None

    def route(self, path: str) -> tuple[Path, dict[str, str]]:
        for p in self.paths:
            params = p.match(path)
            if params is not None:
                return p, params
        raise UnsupportedPath()

    def field_data(self, p: Path, req: Request, params: dict[str, str]) -> FieldData:
        return FieldData(p.fields, req.data, params)

    async def exists(self, p: Path, req: Request, fd: FieldData) -> bool | None:
        """None when the path has no existence check (the operation is then always ``update``)."""
        if p.existence_check is None:
            return None
        return await p.existence_check(req, fd)

    async def handle(self, p: Path, req: Request, fd: FieldData) -> Response | None:
        handler = p.operations.get(req.operation)
        if handler is None and req.operation is Operation.CREATE:
            handler = p.operations.get(Operation.UPDATE)
        if handler is None and req.operation is Operation.UPDATE:
            handler = p.operations.get(Operation.CREATE)
        if handler is None:
            raise UnsupportedOperation()
        fd.validate_required()
        return await handler(req, fd)

    def supports(self, p: Path, op: Operation) -> bool:
        if op in p.operations:
            return True
        if op is Operation.CREATE and Operation.UPDATE in p.operations:
            return True
        return op is Operation.UPDATE and Operation.CREATE in p.operations
