"""``strongroom detect``: registered here like every command group; the command lives in ``strongroom.detect.cli``."""

from strongroom.detect.cli import register

__all__ = ["register"]
