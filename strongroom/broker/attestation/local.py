"""A development attestor: documents in Nitro's format, signed by a CA of its own (in memory, or a local file).

It proves nothing about the build to anyone else, so it refuses to exist unless explicitly marked insecure, and a
production configuration never uses it (see ``config.py`` and ``startup.py``).
"""

from __future__ import annotations

from cryptography import x509

from strongroom.attestation.testca import AttestationCA


class InsecureAttestorRefused(RuntimeError):
    pass


class LocalAttestor:
    kind = "local"

    def __init__(self, measurement_hex: str, *, insecure: bool = False, ca: AttestationCA | None = None) -> None:
        if insecure is not True:
            raise InsecureAttestorRefused(
                "the local attestor proves nothing about the running build; "
                "set insecure = true to use it in development"
            )
        measurement = bytes.fromhex(measurement_hex)
        if len(measurement) != 48:
            raise ValueError("a measurement is a SHA-384 digest (96 hex characters)")
        self._measurement = measurement
        # a transit key trusts one root: a broker that must survive restarts passes the CA kept in seed.local_ca_file
        self._ca = ca or AttestationCA.generate("strongroom-local-insecure-attestor")

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self._ca.root]

    def attest(self, *, nonce: bytes, public_key: bytes | None = None, user_data: bytes | None = None) -> bytes:
        pcrs = {i: bytes(48) for i in range(16)}
        pcrs[0] = self._measurement
        return self._ca.document(pcrs, nonce=nonce, public_key=public_key, user_data=user_data,
                                 module_id="local-insecure-attestor")
