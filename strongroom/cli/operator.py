"""``strongroom operator``: init, unseal, seal, generate-root, rekey and bootstrap, all through the HTTP API."""

from __future__ import annotations

import base64
import binascii
import sys
from pathlib import Path

import click

from strongroom.cli.api_client import ApiClient, ApiError, api_client_options


def _fail(exc: ApiError) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(2 if exc.status and exc.status < 500 else 1)


@click.group()
def operator() -> None:
    """Operate the server: initialise, unseal, seal, recover root access."""


def read_pgp_key_file(path: str) -> str:
    """A public key file as Vault's CLI reads it (ASCII-armored, base64 or binary), as the base64 of the binary key."""
    if path.lower().startswith("keybase:"):
        raise click.UsageError("keybase: keys are not supported; give the public key's file")
    try:
        raw = Path(path.removeprefix("@")).read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read PGP key file {path!r}: {exc.strerror}") from None
    text = raw.decode("ascii", errors="replace")
    if "-----BEGIN PGP PUBLIC KEY BLOCK-----" in text:
        return base64.b64encode(_dearmor(text, path)).decode()
    try:
        base64.b64decode(text.strip(), validate=True)
        return "".join(text.split())
    except (binascii.Error, ValueError):
        return base64.b64encode(raw).decode()


_BEGIN, _END = "-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----END PGP PUBLIC KEY BLOCK-----"


def _dearmor(text: str, path: str) -> bytes:
    """The payload of one ASCII-armored block (RFC 4880 section 6.2): headers, a blank line, base64, a checksum."""
    if text.count(_BEGIN) != 1 or _END not in text:
        raise click.UsageError(f"expected exactly one armored public key in {path!r}")
    lines = [ln.strip() for ln in text.split(_BEGIN, 1)[1].split(_END, 1)[0].strip().splitlines()]
    if "" in lines:
        lines = lines[lines.index("") + 1 :]  # skip the armor headers
    payload = "".join(ln for ln in lines if ln and not ln.startswith("="))  # "=" starts the CRC-24 line
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise click.UsageError(f"cannot read the armored key in {path!r}") from None


@operator.command()
@click.option("--key-shares", default=5, show_default=True, type=int)
@click.option("--key-threshold", default=3, show_default=True, type=int)
@click.option(
    "--pgp-keys",
    default="",
    help="Comma-separated public key files, one per key share: each share is printed encrypted to its key.",
)
@click.option("--root-token-pgp-key", default="", help="Public key file: the root token is printed encrypted to it.")
@api_client_options
def init(api: ApiClient, key_shares: int, key_threshold: int, pgp_keys: str, root_token_pgp_key: str) -> None:
    """Initialise a new server: prints the unseal keys and the initial root token once."""
    body: dict[str, object] = {"secret_shares": key_shares, "secret_threshold": key_threshold}
    if pgp_keys:
        body["pgp_keys"] = [read_pgp_key_file(p.strip()) for p in pgp_keys.split(",")]
    if root_token_pgp_key:
        body["root_token_pgp_key"] = read_pgp_key_file(root_token_pgp_key.strip())
    try:
        out = api.request("PUT", "sys/init", body)
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
    if pgp_keys or root_token_pgp_key:
        click.echo(
            "\nThe unseal keys (with --pgp-keys, in the order of the files) and the root token (with\n"
            "--root-token-pgp-key) above are base64 OpenPGP messages: base64 -d | gpg --decrypt with the owner's key."
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
@click.option("--pgp-key", default="", help="With --init: encrypt the new root token to this public key file instead.")
@click.option("--nonce", default="", help="Nonce of the generation in progress.")
@click.option("--decode", default="", help="Decode an encoded token with --otp.")
@click.option("--cancel", is_flag=True)
@click.option("--status", "show_status", is_flag=True)
@click.argument("key", required=False)
@api_client_options
def generate_root(
    api: ApiClient,
    start: bool,
    otp: str,
    pgp_key: str,
    nonce: str,
    decode: str,
    cancel: bool,
    show_status: bool,
    key: str | None,
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
            body: dict[str, str] = {}
            if otp:
                body["otp"] = otp
            elif pgp_key:
                body["pgp_key"] = read_pgp_key_file(pgp_key)
            st = api.request("PUT", "sys/generate-root/attempt", body)
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
    if st.get("pgp_fingerprint"):
        click.echo(f"PGP Fingerprint: {st['pgp_fingerprint']}")
    if st.get("encoded_token"):
        click.echo(f"Encoded Token: {st['encoded_token']}")


# --- backups, restore and migration (strongroom/ops/) ---------------------------------------------------------------


def _raw(api: ApiClient, method: str, path: str, content: bytes | None = None) -> bytes:
    """A request whose body or answer is a snapshot archive, not JSON; snapshots of large stores take a while."""
    import httpx

    headers = {"X-Vault-Request": "true", **({"X-Vault-Token": api.token} if api.token else {})}
    try:
        resp = api._http.request(method, f"/v1/{path}", content=content, headers=headers, timeout=600.0)
    except httpx.HTTPError as exc:
        raise ApiError(0, [f"cannot reach {api.addr}: {type(exc).__name__}"]) from None
    if resp.status_code >= 400:
        try:
            messages = list(resp.json().get("errors") or [])
        except ValueError:
            messages = []
        raise ApiError(resp.status_code, messages)
    return resp.content


@operator.group()
def snapshot() -> None:
    """Save a consistent snapshot of a running server, or restore one (needs sudo on sys/storage/snapshot)."""


@snapshot.command("save")
@click.argument("file", type=click.Path(dir_okay=False, writable=True))
@api_client_options
def snapshot_save(api: ApiClient, file: str) -> None:
    """Write a snapshot of the whole store to FILE (barrier ciphertext: useless without the unseal keys)."""
    import os

    try:
        data = _raw(api, "GET", "sys/storage/snapshot")
    except ApiError as exc:
        _fail(exc)
        return
    partial = file + ".partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, file)
    click.echo(f"Success! Snapshot of {len(data)} bytes saved to {file}")


@snapshot.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--force", is_flag=True, help="Install it even if it was sealed with other keys than the server's.")
@api_client_options
def snapshot_restore(api: ApiClient, file: str, force: bool) -> None:
    """Replace the server's whole store with the snapshot in FILE; the server seals and must be unsealed with the
    snapshot's unseal keys."""
    data = Path(file).read_bytes()
    try:
        _raw(api, "POST", "sys/storage/snapshot-force" if force else "sys/storage/snapshot", data)
    except ApiError as exc:
        _fail(exc)
        return
    click.echo("Success! The snapshot was restored; the server is sealed: unseal it with the snapshot's keys.")


@operator.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help='Vault\'s migration file: storage_source "…" { … } and storage_destination "…" { … }.')
@click.option("--start", "-start", default="", help="Resume: copy only the keys at or after this one.")
@click.option("--reset", is_flag=True, help="Empty a destination that already holds data before copying.")
def migrate(config_path: str, start: str, reset: bool) -> None:
    """Copy every entry of one storage into another while no server runs on either, then verify the copy."""
    import asyncio

    from strongroom.config import ConfigError
    from strongroom.core.logical import LogicalError
    from strongroom.ops import migrate as mig

    def progress(copied: int, last: str) -> None:
        if copied % (mig.PAGE * 20) == 0:
            click.echo(f"copied {copied} entries; to resume after an interruption: --start '{last}'", err=True)

    try:
        cfg = mig.parse_config(Path(config_path).read_text(), config_path)
        result = asyncio.run(mig.migrate(cfg, start=start, reset=reset, progress=progress))
    except (ConfigError, mig.MigrationError, LogicalError, ConnectionError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    click.echo(
        f"Success! All of the keys have been migrated: {result.copied} copied, {result.entries} entries verified "
        f"(sha256 {result.sha256})."
    )


def register(cli: click.Group) -> None:
    cli.add_command(operator)
