"""Attestation: proving which build of the broker is running before its seed keys are released."""

from __future__ import annotations

from strongroom.broker.attestation.document import AttestationDocument, AttestationError

__all__ = ["AttestationDocument", "AttestationError"]
