"""``strongroom lint manifests DIR``: the reference's pull-request check, "a service that uses Cassandra must declare
its keyspace".

A ServiceAccount **uses Cassandra** when any of these is true (``<prefix>`` defaults to ``strongroom.io``):

- it has a ``<prefix>/cluster`` annotation (it names the Cassandra cluster it talks to);
- it has a ``<prefix>/database: cassandra`` annotation;
- it has a ``<prefix>/uses-cassandra: "true"`` label or annotation.

Such a ServiceAccount must carry ``<prefix>/keyspace``, and any keyspace annotation (on any ServiceAccount) must be a
valid keyspace name, ``^[A-Za-z0-9_]{1,48}$``, because the database engine refuses anything else. Exit status 1 and
one line per problem when something is wrong, 0 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from strongroom.engines.database.dynamic_roles import KEYSPACE
from strongroom.engines.database.serviceaccounts import read_manifests

_TRUE = ("true", "yes", "1")


def uses_cassandra(annotations: dict[str, str], labels: dict[str, str], prefix: str) -> str:
    """Why this ServiceAccount counts as a Cassandra user ('' when it does not)."""
    if annotations.get(f"{prefix}/cluster"):
        return f"{prefix}/cluster={annotations[f'{prefix}/cluster']}"
    if annotations.get(f"{prefix}/database", "").lower() == "cassandra":
        return f"{prefix}/database=cassandra"
    for source, values in (("label", labels), ("annotation", annotations)):
        if values.get(f"{prefix}/uses-cassandra", "").lower() in _TRUE:
            return f"{source} {prefix}/uses-cassandra"
    return ""


def lint(directory: Path, prefix: str) -> tuple[list[str], int]:
    """Problems found (one message each) and how many ServiceAccounts were checked."""
    problems: list[str] = []
    accounts = read_manifests(directory)
    for sa in accounts:
        where = f"{sa['file']}: ServiceAccount {sa['namespace']}/{sa['name']}"
        keyspace = sa["annotations"].get(f"{prefix}/keyspace")
        reason = uses_cassandra(sa["annotations"], sa["labels"], prefix)
        if reason and not keyspace:
            problems.append(
                f"{where} uses Cassandra ({reason}) but does not declare its keyspace: "
                f"add the annotation {prefix}/keyspace: <keyspace>"
            )
        elif keyspace is not None and not KEYSPACE.fullmatch(keyspace):
            problems.append(
                f"{where} has an invalid {prefix}/keyspace {keyspace[:60]!r}: "
                "a keyspace is 1 to 48 letters, digits or underscores"
            )
    return problems, len(accounts)


@click.group("lint")
def lint_group() -> None:
    """Checks for repositories, meant to run on every pull request."""


@lint_group.command("manifests")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--prefix", default="strongroom.io", show_default=True, help="Annotation prefix.")
def manifests(directory: Path, prefix: str) -> None:
    """Every ServiceAccount under DIRECTORY that uses Cassandra must declare its keyspace."""
    prefix = prefix.rstrip("/")
    problems, checked = lint(directory, prefix)
    for line in problems:
        click.echo(line, err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) in {checked} ServiceAccount(s)", err=True)
        sys.exit(1)
    click.echo(f"ok: {checked} ServiceAccount(s) checked")


def register(cli: click.Group) -> None:
    cli.add_command(lint_group)
