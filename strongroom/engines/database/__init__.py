"""The ``database`` secrets engine: short-lived, per-service database users for Cassandra and PostgreSQL.

Start at :mod:`strongroom.engines.database.backend`, which lists the paths and the module that serves each.
"""
