"""Database plugins: the only code in the engine that speaks to a database.

A plugin knows one database's connection details, default statements and username limits. The engine chooses one by
``plugin_name`` (Vault's names) and never issues a statement itself.
"""

from __future__ import annotations

from strongroom.engines.database.plugins.base import DatabasePlugin, PluginError

PLUGIN_NAMES = ("cassandra-database-plugin", "postgresql-database-plugin")


def new_plugin(plugin_name: str) -> DatabasePlugin:
    if plugin_name == "cassandra-database-plugin":
        from strongroom.engines.database.plugins.cassandra import CassandraPlugin

        return CassandraPlugin()
    if plugin_name == "postgresql-database-plugin":
        from strongroom.engines.database.plugins.postgres import PostgresPlugin

        return PostgresPlugin()
    raise PluginError(f"unknown plugin {plugin_name!r}; known: {', '.join(PLUGIN_NAMES)}")


__all__ = ["PLUGIN_NAMES", "DatabasePlugin", "PluginError", "new_plugin"]
