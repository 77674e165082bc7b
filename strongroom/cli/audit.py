"""``strongroom audit …``: offline tools for audit logs."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from strongroom.audit.verify import verify_file
from strongroom.cli.api_client import ApiClient, ApiError, api_client_options


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
@click.option(
    "--device",
    default=None,
    help="The audit device that wrote FILE: the server then authenticates the file and its end (needs a token).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@api_client_options
def verify(
    file: str,
    partial: bool,
    head_seq: int | None,
    head_hash: str | None,
    device: str | None,
    as_json: bool,
    api: ApiClient,
) -> None:
    """Check FILE's hash chain; report the first line that was removed, edited, inserted or reordered.

    A torn line the server resumed after (crash mid-write) and an exact duplicate of the previous line (a re-send)
    are reported too, as findings: they do not fail the check.

    With --device, the server also authenticates the last line (its mac needs a key only the server holds, and the
    chain ties every earlier line to it) and checks that no lines were cut off the end.
    """
    if device:
        dev = device.strip("/")
        # the head first: the file is read after it, so it holds at least every line the head counts
        head = _api(api, "GET", f"sys/audit-chain/{dev}", None).get("head") or {}
        head_seq, head_hash = int(head.get("seq", 0)), str(head.get("hash", ""))
    try:
        result = verify_file(file, partial=partial, head_seq=head_seq, head_hash=head_hash)
    except OSError as e:
        click.echo(f"cannot read {file}: {e.strerror}", err=True)
        sys.exit(2)
    authenticated: bool | None = None
    if device and result.ok and result.entries:
        if not result.last_mac:
            result.ok, result.line = False, result.entries
            result.problem = f"line {result.entries}: the last entry carries no mac, so it cannot be authenticated"
        else:
            answer = _api(
                api,
                "POST",
                f"sys/audit-chain/{device.strip('/')}",
                {"line_sha256": result.last_unsigned_sha256, "mac": result.last_mac},
            )
            authenticated = bool(answer.get("valid"))
            if not authenticated:
                result.ok, result.line, result.seq = False, result.entries, result.last_seq
                result.problem = (
                    f"line {result.entries} (seq {result.last_seq}): the server did not write this entry: "
                    "the log was forged or rewritten"
                )
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
                    "authenticated": authenticated,
                    "findings": result.findings,
                }
            ).decode()
        )
    elif result.ok:
        click.echo(result.message() + ("; authenticated by the server" if authenticated else ""))
    else:
        click.echo(f"audit chain broken: {result.message()}", err=True)
    sys.exit(0 if result.ok else 1)


def _api(api: ApiClient, method: str, path: str, body: dict[str, str] | None) -> dict[str, Any]:
    try:
        return api.request(method, path, body).get("data") or {}
    except ApiError as e:
        click.echo(f"cannot check the audit device with the server: {e}", err=True)
        sys.exit(2)


def register(cli: click.Group) -> None:
    cli.add_command(audit_group)


if __name__ == "__main__":
    audit_group()
