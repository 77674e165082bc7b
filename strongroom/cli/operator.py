"""``strongroom operator``: init, unseal, seal, generate-root, rekey and bootstrap, all through the HTTP API."""

from __future__ import annotations

import base64
import sys

import click

from strongroom.cli.api_client import ApiClient, ApiError, api_client_options


def _fail(exc: ApiError) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(2 if exc.status and exc.status < 500 else 1)


@click.group()
def operator() -> None:
    """Operate the server: initialise, unseal, seal, recover root access."""


@operator.command()
@click.option("--key-shares", default=5, show_default=True, type=int)
@click.option("--key-threshold", default=3, show_default=True, type=int)
@api_client_options
def init(api: ApiClient, key_shares: int, key_threshold: int) -> None:
    """Initialise a new server: prints the unseal keys and the initial root token once."""
    try:
        out = api.request("PUT", "sys/init", {"secret_shares": key_shares, "secret_threshold": key_threshold})
    except ApiError as exc:
        _fail(exc)
        return
    for i, key in enumerate(out["keys_base64"], 1):
        click.echo(f"Unseal Key {i}: {key}")
    click.echo(f"\nInitial Root Token: {out['root_token']}\n")
    click.echo(
        f"Strongroom initialized with {key_shares} key shares and a key threshold of {key_threshold}. Store the\n"
        "keys apart, with different people: any {key_threshold} of them unseal the server.".replace(
            "{key_threshold}", str(key_threshold)
        )
    )


@operator.command()
@click.argument("key", required=False)
@click.option("--reset", is_flag=True, help="Discard the keys entered so far.")
@api_client_options
def unseal(api: ApiClient, key: str | None, reset: bool) -> None:
    """Enter one unseal key (prompted without echo when not given)."""
    try:
        if reset:
            st = api.request("PUT", "sys/unseal", {"reset": True})
        else:
            if not key:
                key = click.prompt("Unseal Key (will be hidden)", hide_input=True)
            st = api.request("PUT", "sys/unseal", {"key": key})
    except ApiError as exc:
        _fail(exc)
        return
    click.echo(f"Sealed: {str(st['sealed']).lower()}\nUnseal Progress: {st['progress']}/{st['t']}")


@operator.command()
@api_client_options
def seal(api: ApiClient) -> None:
    """Seal the server (needs a token with sudo on sys/seal)."""
    try:
        api.request("PUT", "sys/seal")
    except ApiError as exc:
        _fail(exc)
        return
    click.echo("Success! Strongroom is sealed.")


@operator.command()
@api_client_options
def bootstrap(api: ApiClient) -> None:
    """Install the defaults: Kubernetes workload login with the kubernetes-reader policy, and the people policies."""
    try:
        out = api.request("PUT", "sys/bootstrap")
    except ApiError as exc:
        _fail(exc)
        return
    for line in (out.get("data") or {}).get("installed", []):
        click.echo(f"installed: {line}")
    click.echo("Success! Bootstrap complete.")


@operator.command("generate-root")
@click.option("--init", "start", is_flag=True, help="Start a root token generation (prints the OTP).")
@click.option("--otp", default="", help="Use this OTP instead of a generated one.")
@click.option("--nonce", default="", help="Nonce of the generation in progress.")
@click.option("--decode", default="", help="Decode an encoded token with --otp.")
@click.option("--cancel", is_flag=True)
@click.option("--status", "show_status", is_flag=True)
@click.argument("key", required=False)
@api_client_options
def generate_root(
    api: ApiClient, start: bool, otp: str, nonce: str, decode: str, cancel: bool, show_status: bool, key: str | None
) -> None:
    """Generate a new root token from a quorum of unseal keys, delivered XOR-encoded with a one-time password."""
    try:
        if decode:
            if not otp:
                raise click.UsageError("--decode needs --otp")
            raw = base64.b64decode(decode + "=" * (-len(decode) % 4))
            click.echo(bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=False)).decode())
            return
        if cancel:
            api.request("DELETE", "sys/generate-root/attempt")
            click.echo("Success! Root token generation canceled (if it was started)")
            return
        if show_status:
            st = api.request("GET", "sys/generate-root/attempt")
        elif start:
            st = api.request("PUT", "sys/generate-root/attempt", {"otp": otp} if otp else {})
            if st.get("otp"):
                click.echo(f"OTP: {st['otp']}")
        else:
            if not key:
                key = click.prompt("Unseal Key (will be hidden)", hide_input=True)
            if not nonce:
                nonce = api.request("GET", "sys/generate-root/attempt").get("nonce", "")
            st = api.request("PUT", "sys/generate-root/update", {"key": key, "nonce": nonce})
    except ApiError as exc:
        _fail(exc)
        return
    click.echo(
        f"Nonce: {st.get('nonce')}\nStarted: {str(st.get('started')).lower()}\n"
        f"Progress: {st.get('progress')}/{st.get('required')}\nComplete: {str(st.get('complete')).lower()}"
    )
    if st.get("encoded_token"):
        click.echo(f"Encoded Token: {st['encoded_token']}")


def register(cli: click.Group) -> None:
    cli.add_command(operator)
