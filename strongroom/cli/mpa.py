"""``strongroom mpa …`` (request, review, fetch, and the rest) and ``strongroom broker …`` (serve, build, seal).

The engineer's identity is their company IdP ID token (``--token`` or ``STRONGROOM_IDP_TOKEN``, or a file named by
``STRONGROOM_IDP_TOKEN_FILE``); the broker's address is ``--broker`` or ``STRONGROOM_MPA_ADDR``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click
import httpx


class _Client:
    def __init__(self, addr: str, token: str) -> None:
        self.addr = addr.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            r = httpx.request(method, f"{self.addr}{path}", json=body, params=params, timeout=30.0,
                              headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as exc:
            raise click.ClickException(f"cannot reach the broker at {self.addr}: {type(exc).__name__}") from None
        try:
            data = r.json()
        except ValueError:
            data = {}
        if r.status_code >= 400:
            errors = data.get("errors") if isinstance(data, dict) else None
            raise click.ClickException("; ".join(errors or [f"broker answered {r.status_code}"]))
        return data


def _token(token: str | None, token_file: str | None) -> str:
    if token:
        return token.strip()
    if token_file:
        return Path(token_file).read_text().strip()
    raise click.UsageError("no identity token: pass --token or set STRONGROOM_IDP_TOKEN")


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "-"


def _state(req: dict[str, Any]) -> str:
    state = req["state"]
    if req.get("needs_acknowledgement"):
        state += " (BREAK-GLASS, awaiting acknowledgement)"
    elif req.get("break_glass"):
        state += " (break-glass, acknowledged)"
    return state


def _summary(req: dict[str, Any]) -> str:
    who = req["requester"].get("email") or req["requester"].get("name") or req["requester"]["subject"]
    return (f"{req['id']}  {req['kind']:<18} {_state(req):<10} {who:<24} "
            f"{len(req.get('approvers', []))}/{req['approvals_needed']}  {req['reason'][:60]}")


def _detail(req: dict[str, Any]) -> str:
    who = req["requester"].get("email") or req["requester"]["subject"]
    lines = [
        f"Request:     {req['id']}", f"Kind:        {req['kind']}", f"State:       {_state(req)}",
        f"Requester:   {who}", f"Reason:      {req['reason']}", f"Duration:    {req['duration'] // 60}m",
        f"Created:     {_when(req['created_at'])}", f"Approvals:   {len(req['approvers'])} of {req['approvals_needed']}"
        f" ({', '.join(req['approvers']) or 'none yet'})",
        f"Approved:    {_when(req.get('approved_at'))}", f"Access ends: {_when(req.get('access_expires_at'))}",
        f"Fetched:     {_when(req.get('fetched_at'))}",
    ]
    if req.get("params"):
        lines.append(f"Parameters:  {json.dumps(req['params'])}")
    for r in req.get("reviews", []):
        rv = r["reviewer"].get("email") or r["reviewer"]["subject"]
        lines.append(f"  {r['decision']:<11} by {rv} at {_when(r['at'])}: {r['comment']}")
    return "\n".join(lines)


@click.group("mpa")
@click.option("--broker", "addr", envvar="STRONGROOM_MPA_ADDR", default="http://127.0.0.1:8300", show_default=True,
              help="Broker address.")
@click.option("--token", envvar="STRONGROOM_IDP_TOKEN", default=None, help="Your company IdP ID token.")
@click.option("--token-file", envvar="STRONGROOM_IDP_TOKEN_FILE", default=None, type=click.Path(dir_okay=False))
@click.pass_context
def mpa(ctx: click.Context, addr: str, token: str | None, token_file: str | None) -> None:
    """Multi-party authorisation: privileged credentials only with another engineer's approval."""
    ctx.obj = lambda: _Client(addr, _token(token, token_file))


@mpa.command("request")
@click.argument("kind")
@click.option("--reason", required=True, help="Why you need access (a real reason; placeholders are refused).")
@click.option("--duration", default=None, help="Access duration once approved, e.g. 15m (default: the kind's maximum).")
@click.option("--measurement", default=None, help="For broker-deploy: the new build's SHA-384 measurement.")
@click.pass_obj
def request_cmd(client: Any, kind: str, reason: str, duration: str | None, measurement: str | None) -> None:
    """Ask for a privileged credential of KIND."""
    params = {"measurement": measurement} if measurement else None
    out = client().call("POST", "/v1/requests", {"kind": kind, "reason": reason, "duration": duration,
                                                "params": params})
    req = out["request"]
    click.echo(f"Request {req['id']} created ({req['kind']}, {req['duration'] // 60}m once approved).")
    click.echo(f"Needs {req['approvals_needed']} approval(s) from a member of: {', '.join(out['approve_groups'])}")
    click.echo(f"Waiting for approval until {_when(req['request_expires_at'])}. "
               f"Ask a reviewer to run: strongroom mpa review {req['id']}")
    click.echo(f"Then fetch with: strongroom mpa fetch {req['id']}")


@mpa.command("review")
@click.argument("request_id", required=False)
@click.option("--approve", "decision", flag_value="approve", help="Approve (or acknowledge a break-glass use).")
@click.option("--deny", "decision", flag_value="deny", help="Deny.")
@click.option("--comment", "-c", default=None, help="Review comment (required to deny).")
@click.pass_obj
def review_cmd(client: Any, request_id: str | None, decision: str | None, comment: str | None) -> None:
    """List requests you may review, or approve/deny REQUEST_ID."""
    c = client()
    if request_id is None:
        reqs = c.call("GET", "/v1/requests", params={"reviewable": "1"})["requests"]
        if not reqs:
            click.echo("Nothing is waiting for your review.")
        for req in reqs:
            click.echo(_summary(req))
        return
    req = c.call("GET", f"/v1/requests/{request_id}")["request"]
    click.echo(_detail(req))
    if decision is None:
        if not sys.stdin.isatty():
            raise click.UsageError("pass --approve or --deny")
        decision = click.prompt("Decision", type=click.Choice(["approve", "deny"]))
    if comment is None and (decision == "deny" or req.get("break_glass")):
        comment = click.prompt("Comment")
    out = c.call("POST", f"/v1/requests/{request_id}/review", {"decision": decision, "comment": comment or ""})
    click.echo(f"Recorded: {decision}. Request {request_id} is now {_state(out['request'])}.")


@mpa.command("fetch")
@click.argument("request_id")
@click.option("--output", "-o", type=click.Choice(["json", "token"]), default="json", show_default=True)
@click.pass_obj
def fetch_cmd(client: Any, request_id: str, output: str) -> None:
    """Fetch the approved credential for REQUEST_ID (once; it is minted now)."""
    cred = client().call("POST", f"/v1/requests/{request_id}/fetch")["credential"]
    if output == "token":
        secret = cred.get("id_token") or cred.get("token") or cred.get("grant") or cred.get("password")
        click.echo(secret)
        return
    click.echo(json.dumps(cred, indent=2))
    click.echo(f"Expires at {_when(cred.get('expires_at'))}. This credential cannot be fetched again.", err=True)


@mpa.command("list")
@click.option("--state", default=None, help="Only requests in this state.")
@click.option("--mine", is_flag=True, help="Only your own requests.")
@click.pass_obj
def list_cmd(client: Any, state: str | None, mine: bool) -> None:
    """List requests you can see."""
    params = {k: v for k, v in {"state": state, "mine": "1" if mine else None}.items() if v}
    for req in client().call("GET", "/v1/requests", params=params)["requests"]:
        click.echo(_summary(req))


@mpa.command("show")
@click.argument("request_id")
@click.pass_obj
def show_cmd(client: Any, request_id: str) -> None:
    """Show one request with its reviews."""
    click.echo(_detail(client().call("GET", f"/v1/requests/{request_id}")["request"]))


@mpa.command("cancel")
@click.argument("request_id")
@click.pass_obj
def cancel_cmd(client: Any, request_id: str) -> None:
    """Cancel your own pending or approved (unfetched) request."""
    client().call("POST", f"/v1/requests/{request_id}/cancel")
    click.echo(f"Request {request_id} cancelled.")


@mpa.command("revoke")
@click.argument("request_id")
@click.option("--comment", "-c", default="", help="Why access is being ended.")
@click.pass_obj
def revoke_cmd(client: Any, request_id: str, comment: str) -> None:
    """End access now (Strongroom tokens and database credentials end at once; OIDC tokens simply expire)."""
    req = client().call("POST", f"/v1/requests/{request_id}/revoke", {"comment": comment})["request"]
    click.echo(f"Request {request_id} revoked.")
    if req.get("fetched_at") and req["kind"] in _oidc_kinds(client):
        click.echo("Note: an OIDC token cannot be revoked; it stays valid until it expires at "
                   f"{_when(req.get('access_expires_at'))}.", err=True)


def _oidc_kinds(client: Any) -> set[str]:
    kinds = client().call("GET", "/v1/kinds")["kinds"]
    return {k["name"] for k in kinds if k["type"] == "kubernetes"}


@mpa.command("break-glass")
@click.argument("kind")
@click.option("--reason", required=True, help="The incident and what you will do.")
@click.pass_obj
def break_glass_cmd(client: Any, kind: str, reason: str) -> None:
    """Emergency access without approval: pages security, and stays open until someone else acknowledges it."""
    out = client().call("POST", "/v1/break-glass", {"kind": kind, "reason": reason})
    click.echo(f"BREAK-GLASS request {out['request']['id']}: security has been paged.", err=True)
    click.echo(json.dumps(out["credential"], indent=2))
    click.echo(f"Another engineer must acknowledge it: strongroom mpa review {out['request']['id']} --approve",
               err=True)


@mpa.command("audit-verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.pass_obj
def audit_verify_cmd(client: Any, file: str) -> None:
    """Check a copy of the broker's audit log: its chain, its end, and (by the broker, which holds the key) its MAC."""
    from strongroom.broker.audit_log import Head, verify_with_broker

    c = client()
    raw = c.call("GET", "/v1/audit/head")["head"]
    ok, message = verify_with_broker(
        Path(file).read_bytes().splitlines(), Head(int(raw["seq"]), str(raw["hash"])),
        lambda sha, mac: bool(c.call("POST", "/v1/audit/head", {"line_sha256": sha, "mac": mac}).get("valid")))
    click.echo(message if ok else f"audit chain broken: {message}", err=not ok)
    sys.exit(0 if ok else 1)


@click.group("broker", invoke_without_command=True)
@click.option("--config", "config_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Broker configuration (TOML); with no subcommand, serve it.")
@click.pass_context
def broker(ctx: click.Context, config_file: str | None) -> None:
    """The MPA broker service."""
    if ctx.invoked_subcommand is None:
        if not config_file:
            raise click.UsageError("strongroom broker --config FILE (or a subcommand)")
        _serve(config_file)


def _serve(config_file: str) -> None:
    from strongroom.broker.config import ConfigError
    from strongroom.broker.seed import SeedSealed
    from strongroom.broker.server import serve

    try:
        serve(config_file)
    except (ConfigError, SeedSealed) as exc:
        raise click.ClickException(f"refusing to serve: {exc}") from None


@broker.command("serve")
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
def serve_cmd(config_file: str) -> None:
    """Attest, unseal the seed keys, and serve."""
    _serve(config_file)


@broker.command("build")
@click.option("--source", type=click.Path(exists=True, file_okay=False), default=None,
              help="Checkout to build from (default: this installation's source tree).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default="strongroom-broker.zip", show_default=True)
def build_cmd(source: str | None, out_file: str) -> None:
    """Build the reproducible broker artifact and print its SHA-384 measurement."""
    from strongroom.broker.build import BuildError, build_artifact, measurement

    try:
        artifact = build_artifact(Path(source) if source else None)
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None
    Path(out_file).write_bytes(artifact)
    click.echo(f"{measurement(artifact)}  {out_file}")


@broker.command("seal-seed")
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--measurement", "measurements", multiple=True, required=True, help="Allowed build measurement.")
@click.option("--strongroom-token-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The broker's own Strongroom token, sealed into the seed.")
def seal_seed_cmd(config_file: str, measurements: tuple[str, ...], strongroom_token_file: str | None) -> None:
    """First-time setup: bind the seed's transit key to the allowed builds, and seal a new seed under it.

    Runs with an operator's Strongroom token (STRONGROOM_TOKEN or VAULT_TOKEN) that may create the key, bind its
    attestation policy and encrypt with it. A key that is already bound keeps its allowed builds.
    """
    import os

    from cryptography.hazmat.primitives import serialization

    from strongroom.attestation.testca import load_or_create_ca
    from strongroom.broker.config import load_config
    from strongroom.broker.oidc import generate_signing_key
    from strongroom.broker.seed import SeedSealed, SeedServer, new_seed, write_sealed

    config = load_config(config_file)
    if Path(config.seed.file).exists():
        raise click.ClickException("a sealed seed already exists; changing builds goes through a broker-deploy request")
    operator = os.environ.get("STRONGROOM_TOKEN") or os.environ.get("VAULT_TOKEN") or ""
    if not operator:
        raise click.ClickException("set STRONGROOM_TOKEN (or VAULT_TOKEN) to an operator token for the transit key")
    token = Path(strongroom_token_file).read_text().strip() if strongroom_token_file else None
    seed = new_seed(generate_signing_key(config.oidc_algorithm), token)
    # the local attestor's CA is the development stand-in for the AWS root, the default trust anchor
    root = None
    if config.seed.attestor == "local":
        root = load_or_create_ca(config.seed.local_ca_file).root.public_bytes(serialization.Encoding.PEM).decode()
    try:
        server = SeedServer(config.strongroom_addr, operator, config.seed.transit_mount, config.seed.transit_key)
        server.bind(measurements, root)
        write_sealed(config.seed.file, server.seal(seed))
    except (SeedSealed, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Sealed seed written to {config.seed.file} under transit key {config.seed.transit_mount}/"
               f"{config.seed.transit_key}.")


@broker.command("allow-measurement")
@click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--credential-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The credential (JSON) fetched from an approved broker-deploy request.")
def allow_measurement_cmd(config_file: str, credential_file: str) -> None:
    """Allow a new build to open the seed, with the token of an approved broker-deploy request (two approvers)."""
    from strongroom.broker.config import load_config
    from strongroom.broker.seed import SeedSealed, SeedServer

    config = load_config(config_file)
    try:
        cred = json.loads(Path(credential_file).read_text())
        token, measurement = cred["token"], cred["measurement"]
    except (ValueError, KeyError, TypeError):
        raise click.ClickException("the credential file is not a fetched broker-deploy credential") from None
    try:
        server = SeedServer(config.strongroom_addr, token, config.seed.transit_mount, config.seed.transit_key)
        allowed = server.allow_measurement(measurement)
    except (SeedSealed, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("Allowed measurements: " + ", ".join(allowed))


def register(cli: click.Group) -> None:
    cli.add_command(mpa)
    cli.add_command(broker)
