"""``strongroom lint manifests DIR``: the reference's pull-request check, "a service that uses Cassandra must declare
its keyspace", and the same for PostgreSQL and for the cluster a service names.

A ServiceAccount **uses Cassandra** when any of these is true (``<prefix>`` defaults to ``strongroom.io``):

- it has a ``<prefix>/cluster`` annotation (it names the Cassandra cluster it talks to), unless ``<prefix>/database``
  says PostgreSQL;
- it has a ``<prefix>/database: cassandra`` annotation;
- it has a ``<prefix>/uses-cassandra: "true"`` label or annotation.

It **uses PostgreSQL** when ``<prefix>/database`` is ``postgresql`` (or ``postgres``), or it has a
``<prefix>/uses-postgresql: "true"`` label or annotation.

Either must carry ``<prefix>/keyspace`` (for PostgreSQL it names the schema: the engine substitutes it for
``{{keyspace}}`` in the base role's statements either way). Any keyspace annotation must be a valid keyspace name,
``^[A-Za-z0-9_]{1,48}$``, because the database engine refuses anything else; a PostgreSQL schema must moreover be a
plain identifier (not starting with a digit) outside PostgreSQL's reserved ``pg_`` namespace. A ``<prefix>/schema``
annotation is a mistake the engine would ignore, so it is reported.

``<prefix>/cluster`` becomes the name of the database connection (``database/config/<cluster>``), so it must be a
valid connection name, and, when ``--cluster PATTERN`` is given (repeatable, globs such as ``cassandra-*``, or the
environment variable ``STRONGROOM_LINT_CLUSTERS`` as a comma-separated list), one of the known clusters. Exit status 1
and one line per problem when something is wrong, 0 otherwise.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from pathlib import Path
from typing import Any

import click

from strongroom.engines.database.dynamic_roles import KEYSPACE
from strongroom.engines.database.serviceaccounts import read_manifests
from strongroom.framework.path import NAME

_TRUE = ("true", "yes", "1")
_POSTGRES = ("postgresql", "postgres")
# the engine's connection names (``database/config/<name>``)
_CONNECTION = re.compile(NAME)


def uses_cassandra(annotations: dict[str, str], labels: dict[str, str], prefix: str) -> str:
    """Why this ServiceAccount counts as a Cassandra user ('' when it does not)."""
    database = annotations.get(f"{prefix}/database", "").lower()
    if annotations.get(f"{prefix}/cluster") and database not in _POSTGRES:
        return f"{prefix}/cluster={annotations[f'{prefix}/cluster']}"
    if database == "cassandra":
        return f"{prefix}/database=cassandra"
    return _flag(annotations, labels, f"{prefix}/uses-cassandra")


def uses_postgres(annotations: dict[str, str], labels: dict[str, str], prefix: str) -> str:
    """Why this ServiceAccount counts as a PostgreSQL user ('' when it does not)."""
    database = annotations.get(f"{prefix}/database", "").lower()
    if database in _POSTGRES:
        return f"{prefix}/database={database}"
    return _flag(annotations, labels, f"{prefix}/uses-postgresql")


def _flag(annotations: dict[str, str], labels: dict[str, str], name: str) -> str:
    for source, values in (("label", labels), ("annotation", annotations)):
        if values.get(name, "").lower() in _TRUE:
            return f"{source} {name}"
    return ""


def _check(sa: dict[str, Any], prefix: str, clusters: tuple[str, ...]) -> list[str]:
    where = f"{sa['file']}: ServiceAccount {sa['namespace']}/{sa['name']}"
    annotations, labels = sa["annotations"], sa["labels"]
    problems: list[str] = []
    keyspace = annotations.get(f"{prefix}/keyspace")
    cassandra = uses_cassandra(annotations, labels, prefix)
    postgres = uses_postgres(annotations, labels, prefix)
    if cassandra and postgres:
        problems.append(f"{where} declares both Cassandra ({cassandra}) and PostgreSQL ({postgres}): pick one")
    if f"{prefix}/schema" in annotations:
        problems.append(
            f"{where} has a {prefix}/schema annotation, which the database engine ignores: "
            f"name the schema with {prefix}/keyspace"
        )
    if (cassandra or postgres) and not keyspace:
        what, reason = ("Cassandra", cassandra) if cassandra else ("PostgreSQL", postgres)
        noun = "keyspace" if cassandra else "schema"
        problems.append(
            f"{where} uses {what} ({reason}) but does not declare its {noun}: "
            f"add the annotation {prefix}/keyspace: <{noun}>"
        )
    elif keyspace is not None and not KEYSPACE.fullmatch(keyspace):
        problems.append(
            f"{where} has an invalid {prefix}/keyspace {keyspace[:60]!r}: "
            "a keyspace is 1 to 48 letters, digits or underscores"
        )
    elif keyspace and postgres:
        if keyspace[0].isdigit():
            problems.append(f"{where} has an invalid PostgreSQL schema {keyspace!r}: it must not start with a digit")
        elif keyspace.lower().startswith("pg_"):
            problems.append(f"{where} has an invalid PostgreSQL schema {keyspace!r}: pg_ names are reserved")
    cluster = annotations.get(f"{prefix}/cluster")
    if cluster is not None:
        if not _CONNECTION.fullmatch(cluster):
            problems.append(
                f"{where} has an invalid {prefix}/cluster {cluster[:60]!r}: a cluster is a connection name "
                "(letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
            )
        elif clusters and not any(fnmatch.fnmatchcase(cluster, pattern) for pattern in clusters):
            problems.append(
                f"{where} names an unknown cluster {prefix}/cluster={cluster!r}: "
                f"known clusters are {', '.join(clusters)}"
            )
    return problems


def lint(directory: Path, prefix: str, clusters: tuple[str, ...] = ()) -> tuple[list[str], int]:
    """Problems found (one message each) and how many ServiceAccounts were checked."""
    accounts = read_manifests(directory)
    problems = [line for sa in accounts for line in _check(sa, prefix, clusters)]
    return problems, len(accounts)


@click.group("lint")
def lint_group() -> None:
    """Checks for repositories, meant to run on every pull request."""


@lint_group.command("manifests")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--prefix", default="strongroom.io", show_default=True, help="Annotation prefix.")
@click.option(
    "--cluster",
    "clusters",
    multiple=True,
    envvar="STRONGROOM_LINT_CLUSTERS",
    help="A known cluster (database connection) name or glob; repeat it. Without it only the syntax is checked.",
)
def manifests(directory: Path, prefix: str, clusters: tuple[str, ...]) -> None:
    """Every ServiceAccount under DIRECTORY that uses Cassandra or PostgreSQL must declare its keyspace or schema,
    and name a known cluster."""
    prefix = prefix.rstrip("/")
    known = tuple(p.strip() for c in clusters for p in c.split(",") if p.strip())
    problems, checked = lint(directory, prefix, known)
    for line in problems:
        click.echo(line, err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {checked} ServiceAccount(s)", err=True)
        sys.exit(1)
    click.echo(f"ok: {checked} ServiceAccount(s) checked")


def register(cli: click.Group) -> None:
    cli.add_command(lint_group)
