"""``strongroom proxy --config FILE``: run the staff proxy and inspection UI (see :mod:`strongroom.proxy.config`)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.command("proxy")
    @click.option("--config", "config_file", required=True, type=click.Path(exists=True, dir_okay=False))
    @click.option("--listen", default=None, help="host:port, overriding the config file's listen.")
    def proxy(config_file: str, listen: str | None) -> None:
        """Staff front door: verifies IdP tokens, forwards with per-person child tokens, serves the UI at /ui/."""
        import uvicorn

        from strongroom.proxy.app import ProxyApp
        from strongroom.proxy.config import ConfigError, load

        try:
            cfg = load(config_file)
            if listen:
                cfg = type(cfg)(**{**cfg.__dict__, "listen": listen})
            host, port = cfg.host_port
            if cfg.login == "token":
                cfg.proxy_token()  # fail at start, not on the first request
        except (ConfigError, OSError, ValueError) as exc:
            raise click.UsageError(str(exc)) from None
        click.echo(f"strongroom proxy listening on http://{host}:{port} → {cfg.upstream}", err=True)
        uvicorn.run(ProxyApp(cfg), host=host, port=port, log_level="warning", access_log=False)
