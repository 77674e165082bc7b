"""Typed errors of the secretstore library. Messages name the path, never a value or a token."""

from __future__ import annotations


class SecretStoreError(Exception):
    """Base class: anything the library raises on purpose."""


class ConfigurationError(SecretStoreError):
    """The pod does not look like a pod: no ServiceAccount token, no namespace, a malformed token."""


class SecretNotFound(SecretStoreError):
    """The secret version does not exist (or was deleted or destroyed)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"secret not found: {path}")
        self.path = path


class PermissionDenied(SecretStoreError):
    """The server refused: this workload may not read that path, or the login was refused."""

    def __init__(self, path: str, detail: str = "permission denied") -> None:
        super().__init__(f"{detail}: {path}")
        self.path = path


class Unavailable(SecretStoreError):
    """The server could not be reached, was sealed, or kept failing after every retry."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"secret store unavailable for {path}: {detail}")
        self.path = path
