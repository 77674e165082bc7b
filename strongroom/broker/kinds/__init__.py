"""Credential kinds: what an approved request turns into at fetch time, and how it is ended early."""

from __future__ import annotations

from strongroom.broker.kinds.base import CredentialKind, KindError, Minted

__all__ = ["CredentialKind", "KindError", "Minted"]
