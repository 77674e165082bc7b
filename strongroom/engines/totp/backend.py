"""The TOTP secrets engine, as Vault's ``totp``: keys generated here (shown once, as URL and QR code) or imported
(``url`` or ``key``), codes generated (``GET code/<name>``) or validated (``POST code/<name>``).

Keys are stored behind the barrier under ``key/<name>`` and never read back. A validated code's time step is recorded
straight to storage (``used/<name>``): that code, and any of an earlier step, is refused afterwards.
"""

from __future__ import annotations

from strongroom.engines.totp import path_code, path_keys
from strongroom.framework import Backend, BackendContext


class TOTPBackend(Backend):
    type = "totp"

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.paths = [*path_keys.paths(self), *path_code.paths(self)]
