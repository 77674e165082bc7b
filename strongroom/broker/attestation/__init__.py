"""The broker's attestors: the Nitro Security Module (``nsm``) and an insecure local one for development (``local``).

Verifying documents is shared with transit's attested decrypt and lives in :mod:`strongroom.attestation`.
"""

from __future__ import annotations

from strongroom.attestation import AttestationDocument, AttestationError

__all__ = ["AttestationDocument", "AttestationError"]
