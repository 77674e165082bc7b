"""Cassandra credentials for people: ``strongroom auth cassandra read|write -e s101 service.ledger`` and
``strongroom cassandra-forward``.

``read``/``write`` ask for ``database/creds/k8s_ro_<sa>_<ns>`` / ``k8s_rw_<sa>_<ns>``: the same dynamic-role path a pod
uses, so the keyspace comes from the service's own ServiceAccount annotation, and what the person may ask for is
decided by their team's policy on those paths. ``--all-keyspaces`` asks for the stored roles ``ro_all`` / ``rw_all``
instead (only teams whose policy grants ``database/creds/ro_all`` get them). The username is printed; the ready
``cqlsh`` command (which contains the password) goes to the clipboard when one is available, else it is printed.

``cassandra-forward`` opens an SSH port forward through the bastion (``--bastion`` or ``$STRONGROOM_BASTION``) to a
Cassandra node, so that the ``cqlsh`` command works against ``127.0.0.1``.
"""

from __future__ import annotations

import select
import shlex
import shutil
import subprocess
import sys
from typing import Any

import click

from strongroom.cli import environments as envs
from strongroom.cli.output import Output
from strongroom.cli.service_names import resolve

_CLIPBOARDS = (["pbcopy"], ["wl-copy"], ["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"])


def role_path(mount: str, mode: str, service: str, namespace: str | None, all_keyspaces: bool) -> str:
    base = "ro" if mode == "read" else "rw"
    if all_keyspaces:
        return f"{mount}/creds/{base}_all"
    ref = resolve(service, namespace)
    return f"{mount}/creds/k8s_{base}_{ref.service_account}_{ref.namespace}"


def cqlsh_command(username: str, password: str, host: str, port: int, ssl: bool) -> str:
    parts = ["cqlsh", "-u", username, "-p", password, *(["--ssl"] if ssl else []), host, str(port)]
    return shlex.join(parts)


def copy_to_clipboard(text: str) -> bool:
    for cmd in _CLIPBOARDS:
        if shutil.which(cmd[0]):
            try:
                subprocess.run(cmd, input=text.encode(), check=True, timeout=5, capture_output=True)
                return True
            except (OSError, subprocess.SubprocessError):
                continue
    return False


def _issue(mode: str, service: str, env_name: str, config: str | None, addr: str | None, token: str | None,
           namespace: str | None, all_keyspaces: bool, mount: str, host: str, port: int, ssl: bool,
           print_command: bool, plain: bool) -> None:  # fmt: skip
    out = Output(plain=plain)
    try:
        env = envs.select(envs.load(envs.config_path(config)), env_name, addr, token)
        path = role_path(mount.strip("/"), mode, service, namespace, all_keyspaces)
    except (envs.UsageError, ValueError) as exc:
        out.error(str(exc.message if isinstance(exc, envs.UsageError) else exc))
        sys.exit(2)
    out.step(f"Authenticating against {env.name}")
    session = envs.Session(env)
    try:
        session.login()
        body: Any = session.call("GET", path)
    except envs.ApiError as exc:
        out.error(f"could not get credentials from {path}: {'; '.join(exc.errors) or f'HTTP {exc.status}'}")
        sys.exit(1)
    except envs.UsageError as exc:
        out.error(exc.message)
        sys.exit(2)
    finally:
        session.close()
    data = body.get("data") or {}
    username, password = data.get("username", ""), data.get("password", "")
    out.info("👁 ", f"Username: {username}")
    out.info("⏳", f"Lease: {body.get('lease_id', '')} ({body.get('lease_duration', 0)}s)")
    command = cqlsh_command(username, password, host, port, ssl)
    if not print_command and copy_to_clipboard(command):
        out.success("cqlsh command copied to clipboard")
    else:
        out.success("cqlsh command:")
        out.result(command)


def _options(f: Any) -> Any:
    for deco in reversed(
        [
            click.argument("service"),
            click.option("-e", "--env", "env_name", default=envs.STAGING, show_default=True, help="Environment."),
            click.option("--config", type=click.Path(dir_okay=False), help="Config file (else $STRONGROOM_CONFIG)."),
            click.option("--addr", help="Server or proxy address (else $STRONGROOM_ADDR, else the environment's)."),
            click.option("--token", help="A Strongroom token (else $STRONGROOM_TOKEN, else the environment's login)."),
            click.option("--namespace", "-n", default=None, help="Kubernetes namespace (default: default)."),
            click.option("--all-keyspaces", is_flag=True, help="Credentials for every keyspace (if your team may)."),
            click.option("--mount", default="database", show_default=True, help="Database engine mount."),
            click.option("--host", default="127.0.0.1", show_default=True, help="Host for the cqlsh command."),
            click.option("--port", default=9042, show_default=True, help="Port for the cqlsh command."),
            click.option("--ssl", is_flag=True, help="Add --ssl to the cqlsh command."),
            click.option("--print", "print_command", is_flag=True, help="Print the cqlsh command, no clipboard."),
            click.option("--plain", is_flag=True, help="No colour or emoji."),
        ]
    ):
        f = deco(f)
    return f


@click.group("cassandra")
def cassandra_group() -> None:
    """Short-lived Cassandra credentials for a service's keyspace."""


@cassandra_group.command("read")
@_options
def read(**kwargs: Any) -> None:
    """Read-only credentials for SERVICE's keyspace (e.g. service.ledger)."""
    _issue("read", **kwargs)


@cassandra_group.command("write")
@_options
def write(**kwargs: Any) -> None:
    """Read-write credentials for SERVICE's keyspace (e.g. service.ledger)."""
    _issue("write", **kwargs)


@click.command("cassandra-forward")
@click.option("--bastion", envvar="STRONGROOM_BASTION", required=True, help="SSH bastion, user@host.")
@click.option("--cluster", default="cassandra-premium1", show_default=True, help="Cassandra node to reach.")
@click.option("--port", default=9042, show_default=True, help="Cassandra's client port.")
@click.option("--local-port", default=9042, show_default=True, help="Local port to listen on (127.0.0.1).")
@click.option("--dry-run", is_flag=True, help="Print the ssh command instead of running it.")
def cassandra_forward(bastion: str, cluster: str, port: int, local_port: int, dry_run: bool) -> None:
    """Forward a local port to a Cassandra node through the bastion, until ^D."""
    if bastion.startswith("-") or cluster.startswith("-"):
        raise click.UsageError("bastion and cluster must be host names")
    cmd = ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{local_port}:{cluster}:{port}", bastion]
    if dry_run:
        click.echo(shlex.join(cmd))
        return
    if shutil.which("ssh") is None:
        raise click.ClickException("ssh is required for cassandra-forward")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    click.echo(f"Forwarding local port {local_port} to {cluster}:{port}", err=True)
    click.echo("Exit this shell with ^D when you are finished", err=True)
    try:
        # wait for ^D (end of input) or for ssh to give up, whichever comes first
        while proc.poll() is None:
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if ready and not sys.stdin.readline():
                break
    except KeyboardInterrupt:
        pass
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    if proc.returncode not in (0, -15, None):
        sys.exit(proc.returncode)


def register(cli: click.Group) -> None:
    auth = cli.commands.get("auth")
    if not isinstance(auth, click.Group):

        @click.group("auth")
        def auth_group() -> None:
            """Credentials for people."""

        auth = auth_group
        cli.add_command(auth)
    auth.add_command(cassandra_group)
    cli.add_command(cassandra_forward)
