"""PostgreSQL for the change log tests: the same throwaway server fixture the storage tests use
(``STRONGROOM_TEST_POSTGRES`` when CI names one)."""

from __future__ import annotations

from tests.storage_pg.conftest import pg_dsn

__all__ = ["pg_dsn"]
