"""Tamper-evident, fail-closed audit: Vault-shaped entries with HMAC'd secrets, hash-chained per device."""

from __future__ import annotations

from strongroom.audit.broker import AuditBroker, AuditFailure
from strongroom.audit.entry import AuditContext

__all__ = ["AuditBroker", "AuditFailure", "AuditContext"]
