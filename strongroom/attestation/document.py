"""The verified content of an attestation document, and the one error every verification failure raises."""

from __future__ import annotations

from dataclasses import dataclass, field


class AttestationError(Exception):
    """The document is malformed, badly signed, untrusted, stale, or not for this nonce."""


@dataclass(frozen=True)
class AttestationDocument:
    module_id: str
    timestamp_ms: int
    pcrs: dict[int, bytes]
    public_key: bytes | None = None
    user_data: bytes | None = None
    nonce: bytes | None = None
    root_fingerprint: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def measurement(self) -> str:
        """PCR0, the hash of the whole enclave image, as lowercase hex."""
        return self.pcrs.get(0, b"").hex()

    @property
    def debug_mode(self) -> bool:
        # Nitro reports all-zero PCRs for enclaves started with --debug-mode, whose memory the parent can read.
        pcr0 = self.pcrs.get(0, b"")
        return not pcr0 or not any(pcr0)
