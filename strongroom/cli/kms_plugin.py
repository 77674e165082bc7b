"""``strongroom kms-plugin``: run kube-apiserver's KMS v2 plugin on a Unix socket (see :mod:`strongroom.kms.plugin`)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from strongroom.kms.transit import KeyRef

SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path, not a secret


def register(cli: click.Group) -> None:
    @cli.command("kms-plugin")
    @click.option("--listen", default="", help="unix:///path/kms.sock (the endpoint in kube-apiserver's config).")
    @click.option("--key", "key_name", required=True, help="Transit key for DEKs (bootstrap: kubernetes-kms).")
    @click.option("--mount", default="transit", show_default=True, help="Path of the transit engine.")
    @click.option("--addr", envvar=["STRONGROOM_ADDR", "VAULT_ADDR"], default="http://127.0.0.1:8200",
                  show_default=True, help="Strongroom's address (or STRONGROOM_ADDR, VAULT_ADDR).")
    @click.option("--ca-cert", envvar=["STRONGROOM_CACERT", "VAULT_CACERT"], default=None, help="CA bundle for --addr.")
    @click.option("--token-file", default=None, type=click.Path(dir_okay=False), help="Authenticate with this token.")
    @click.option("--k8s-role", default=None, help="Authenticate by Kubernetes login with this role.")
    @click.option("--k8s-mount", default="kubernetes", show_default=True, help="Path of the kubernetes auth method.")
    @click.option("--jwt-file", default=SA_TOKEN, show_default=True, help="ServiceAccount token for --k8s-role.")
    @click.option("--timeout", default=5.0, show_default=True, help="Seconds per request to Strongroom.")
    @click.option("--print-policy", is_flag=True, help="Print the policy the plugin needs for --mount/--key and exit.")
    @click.option("--log-level", default="info", show_default=True)
    def kms_plugin(listen: str, key_name: str, mount: str, addr: str, ca_cert: str | None, token_file: str | None,
                   k8s_role: str | None, k8s_mount: str, jwt_file: str, timeout: float, print_policy: bool,
                   log_level: str) -> None:
        """Kubernetes KMS v2 plugin: kube-apiserver's DEK seeds encrypted with a Strongroom transit key.

        Bootstrap installs the policy `kms-plugin` for transit/kubernetes-kms; for another key, print its policy with
        --print-policy. Exactly one of --token-file or --k8s-role is required.
        """
        from strongroom.kms.transit import KeyRef, check_name

        try:
            key = KeyRef(check_name(mount.strip("/"), "mount"), check_name(key_name, "key name"))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        if print_policy:
            from strongroom.core.system.default_policies import kms_plugin_policy

            click.echo(kms_plugin_policy(key.mount, key.name), nl=False)
            return
        if not listen:
            raise click.UsageError("--listen unix:///path/to/kms.sock is required")
        if (token_file is None) == (k8s_role is None):
            raise click.UsageError("give exactly one of --token-file FILE or --k8s-role ROLE")
        # the level applies to Strongroom's own loggers; HTTP and gRPC libraries stay at warnings
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
        logging.getLogger("strongroom").setLevel(getattr(logging, log_level.upper(), logging.INFO))
        _run(listen, key, addr, ca_cert, token_file, k8s_role, k8s_mount, jwt_file, timeout)


def _run(listen: str, key: KeyRef, addr: str, ca_cert: str | None, token_file: str | None, k8s_role: str | None,
         k8s_mount: str, jwt_file: str, timeout: float) -> None:
    from strongroom.kms.plugin import PluginServer
    from strongroom.kms.transit import TransitKey
    from strongroom.secretstore.errors import ConfigurationError
    from strongroom.secretstore.identity import read_token
    from strongroom.secretstore.settings import Settings

    # few, quick retries: kube-apiserver has its own call timeout and retries, so a prompt error serves it better
    settings = Settings(addr=addr.rstrip("/"), role=k8s_role or "", auth_mount=k8s_mount.strip("/"),
                        token_file=jwt_file, ca_cert=ca_cert, timeout=timeout, max_attempts=2, backoff_base=0.1,
                        backoff_cap=0.5)
    transit = TransitKey(key, settings, token_file=token_file)
    try:
        # a missing or empty credential file is a setup mistake: say so now rather than answer "unhealthy" forever
        read_token(token_file or jwt_file)
        server = PluginServer(transit, listen)
        server.start()
    except (OSError, ValueError, ConfigurationError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)

    def _stop(signum: int, frame: FrameType | None) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"strongroom kms-plugin listening on unix://{server.path} (transit key {key.mount}/{key.name}, "
               f"Strongroom {addr}, pid {os.getpid()})", err=True)
    server.wait()
