"""The ``strongroom`` command. Each command group lives in its own module and registers itself here."""

from __future__ import annotations

import importlib
import logging
import sys

import click

from strongroom import __version__
from strongroom.cli.api_client import ApiClient, ApiError, api_client_options

# command groups contributed by other modules; each exposes register(cli)
_GROUP_MODULES = ("operator", "audit", "secret", "mpa", "lint", "auth_cassandra", "proxy", "kms_plugin", "config_cmd",
                  "detect")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="strongroom")
def cli() -> None:
    """Strongroom: a sealed, encrypted, audited secrets platform that speaks Vault's HTTP API."""


@cli.command()
@click.option("--dev", is_flag=True, help="Start an initialised, unsealed, in-memory-keyed dev server.")
@click.option("--dev-listen-address", default="127.0.0.1:8200", show_default=True)
@click.option("--dev-root-token-id", default="", help="Use this value as the dev root token.")
@click.option("--dev-storage", default="", help="SQLite file for dev mode (default: a new temporary folder).")
@click.option("--config", "config_path", default="", help="Server configuration file (Vault's HCL format).")
@click.option("--log-level", default="", help="trace, debug, info, warn or error.")
@click.option("--check", is_flag=True, help="Validate --config FILE and exit; start nothing.")
@click.option("--workers", type=click.IntRange(1, 256), default=None,
              help="Request processes of this node (overrides the configuration's workers).")
def server(
    dev: bool,
    dev_listen_address: str,
    dev_root_token_id: str,
    dev_storage: str,
    config_path: str,
    log_level: str,
    check: bool,
    workers: int | None,
) -> None:
    """Run a Strongroom server."""
    from strongroom import config as config_mod
    from strongroom import server as server_mod

    if dev == bool(config_path):
        raise click.UsageError("give exactly one of --dev or --config FILE")
    if check and dev:
        raise click.UsageError("--check validates a --config FILE")
    try:
        if check:
            click.echo(server_mod.check_config(config_mod.load(config_path)))
        elif dev:
            _logging(log_level or "info")
            opts = server_mod.DevOptions(dev_listen_address, dev_root_token_id, dev_storage)
            if workers and workers > 1:
                from strongroom.scaleout.node import NodeSpec, run_node

                run_node(NodeSpec(server_mod.dev_config(opts), dev=opts, workers=workers))
            server_mod.run(server_mod.run_dev(opts))
        else:
            cfg = config_mod.load(config_path)
            _logging(log_level or cfg.log_level)
            if workers:
                cfg.workers = workers
            if cfg.workers > 1:
                from strongroom.scaleout.node import NodeSpec, run_node

                run_node(NodeSpec(cfg, workers=cfg.workers))
            server_mod.run(server_mod.run_config(cfg))
    except config_mod.ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"Error: {exc.strerror or exc}", err=True)
        sys.exit(1)


def _logging(level: str) -> None:
    levels = {
        "trace": logging.DEBUG,
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "warning": logging.WARNING,
        "error": logging.ERROR,
    }
    logging.basicConfig(
        level=levels.get(level.lower(), logging.INFO), format="%(asctime)s [%(levelname)s] %(name)s: %(message)s"
    )


@cli.command()
@api_client_options
def status(api: ApiClient) -> None:
    """Show seal status. Exit 0 unsealed, 2 sealed, 1 on error (as Vault's CLI)."""
    try:
        st = api.request("GET", "sys/seal-status")
    except ApiError as exc:
        click.echo(f"Error checking seal status: {exc}", err=True)
        sys.exit(1)
    rows = [
        ("Seal Type", st.get("type")),
        ("Initialized", st.get("initialized")),
        ("Sealed", st.get("sealed")),
        ("Total Shares", st.get("n")),
        ("Threshold", st.get("t")),
        ("Unseal Progress", f"{st.get('progress')}/{st.get('t')}"),
        ("Version", st.get("version")),
        ("Storage Type", st.get("storage_type")),
    ]
    if st.get("cluster_id"):
        rows += [("Cluster Name", st.get("cluster_name")), ("Cluster ID", st.get("cluster_id"))]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k.ljust(width)}    {str(v).lower() if isinstance(v, bool) else v}")
    sys.exit(2 if st.get("sealed") else 0)


def _register_groups() -> None:
    for name in _GROUP_MODULES:
        try:
            module = importlib.import_module(f"strongroom.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"strongroom.cli.{name}":
                continue
            raise
        module.register(cli)


_register_groups()


def main() -> None:
    cli(prog_name="strongroom")


if __name__ == "__main__":
    main()
