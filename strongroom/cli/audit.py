"""``strongroom audit …``: offline tools for audit logs."""

from __future__ import annotations

import sys

import click
import orjson

from strongroom.audit.verify import verify_file


@click.group("audit")
def audit_group() -> None:
    """Audit log tools."""


@audit_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--partial", is_flag=True, help="The file continues an earlier (rotated) file: do not require seq 1.")
@click.option(
    "--head-seq", type=int, default=None, help="The device's last seq (GET sys/audit/<path>): detects cut-off lines."
)
@click.option("--head-hash", default=None, help="The device's last line hash (GET sys/audit/<path>).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(file: str, partial: bool, head_seq: int | None, head_hash: str | None, as_json: bool) -> None:
    """Check FILE's hash chain; report the first line that was removed, edited, inserted or reordered."""
    try:
        result = verify_file(file, partial=partial, head_seq=head_seq, head_hash=head_hash)
    except OSError as e:
        click.echo(f"cannot read {file}: {e.strerror}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(
            orjson.dumps(
                {
                    "ok": result.ok,
                    "entries": result.entries,
                    "first_seq": result.first_seq,
                    "last_seq": result.last_seq,
                    "line": result.line or None,
                    "seq": result.seq,
                    "problem": result.problem or None,
                }
            ).decode()
        )
    elif result.ok:
        click.echo(result.message())
    else:
        click.echo(f"audit chain broken: {result.message()}", err=True)
    sys.exit(0 if result.ok else 1)


def register(cli: click.Group) -> None:
    cli.add_command(audit_group)


if __name__ == "__main__":
    audit_group()
