"""Strongroom: a sealed, encrypted, audited secrets platform that speaks Vault's HTTP API."""

__version__ = "0.1.0"
