"""The production attestor: asks the Nitro Security Module (``/dev/nsm``) inside an enclave for a document.

Talking to the NSM needs its ioctl protocol, which is only available inside an enclave image that bundles a helper
(``nsm-attest``, built from aws-nitro-enclaves-nsm-api) printing the raw document for a hex nonce. Outside an enclave
this attestor fails, so the broker refuses to serve rather than run without proof of its build.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from cryptography import x509

from strongroom.attestation.aws_root import aws_nitro_root
from strongroom.attestation.document import AttestationError

NSM_DEVICE = "/dev/nsm"
HELPER = "nsm-attest"


class NitroAttestor:
    kind = "nitro"

    @property
    def roots(self) -> list[x509.Certificate]:
        return [aws_nitro_root()]

    def attest(self, *, nonce: bytes, public_key: bytes | None = None, user_data: bytes | None = None) -> bytes:
        helper = shutil.which(HELPER)
        if not os.path.exists(NSM_DEVICE) or helper is None:
            raise AttestationError("not running inside a Nitro enclave: no /dev/nsm or nsm-attest helper")
        args = [helper, "--nonce", nonce.hex()]
        if public_key:
            args += ["--public-key", public_key.hex()]
        if user_data:
            args += ["--user-data", user_data.hex()]
        result = subprocess.run(args, capture_output=True, timeout=10, check=False)
        if result.returncode != 0:
            raise AttestationError("the Nitro Security Module did not return an attestation document")
        return result.stdout
