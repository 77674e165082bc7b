"""Attestation shared by every part that releases keys to an attested build: AWS Nitro document verification
(COSE_Sign1 ES384, X.509 path to a pinned root), the test CA, and the recipient envelope (``recipient``).

Transit's attested decrypt and the MPA broker both verify documents through this package.
"""

from __future__ import annotations

from strongroom.attestation.aws_root import AWS_NITRO_ROOT_PEM, aws_nitro_root
from strongroom.attestation.document import AttestationDocument, AttestationError
from strongroom.attestation.nitro import verify_nitro

__all__ = ["AWS_NITRO_ROOT_PEM", "AttestationDocument", "AttestationError", "aws_nitro_root", "verify_nitro"]
