"""``strongroom detect --config FILE``."""

from __future__ import annotations

import asyncio
import sys

import click


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--config", "config_path", required=True, help="Detect configuration (YAML).")
    @click.option("--log-level", default="info", help="debug, info, warn or error.")
    def detect(config_path: str, log_level: str) -> None:
        """Read the audit stream, check its hash chain, apply detection rules and send alerts."""
        import logging

        from strongroom.detect.rules import RuleError
        from strongroom.detect.runtime import ConfigError, Detector, load_config

        logging.basicConfig(level=getattr(logging, log_level.upper().replace("WARN", "WARNING"), logging.INFO),
                            format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
        try:
            cfg = load_config(config_path)
            detector = Detector(cfg)
        except (ConfigError, RuleError, ValueError, OSError) as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        asyncio.run(detector.run())
