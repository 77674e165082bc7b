"""PostgreSQL for the one-writer tests: the same throwaway server fixture the storage tests use."""

from __future__ import annotations

from tests.storage_pg.conftest import pg_dsn

__all__ = ["pg_dsn"]
