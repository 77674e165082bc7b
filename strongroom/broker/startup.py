"""Starting the broker: attest, have Strongroom's transit engine release the seed to this build, and only then serve.

The seed is ciphertext under a transit key bound to an attestation policy (``transit/keys/<key>/attestation``). At
start the broker makes an ephemeral RSA key, has its attestor put the public half into an attestation document, and
sends the document with the ciphertext to ``transit/decrypt/<key>``; the server verifies the document against the
key's policy (root, allowed PCR0, age, no debug mode) and answers with the seed encrypted to that RSA key, which only
this process holds. The token the broker decrypts with (``seed.token_file``) and the sealed file together open
nothing without an accepted document: holding both files is no longer enough.

With ``attestor = "nitro"`` the document comes from the Nitro Security Module and must chain to the AWS root; with the
local attestor (development only, refused by a production configuration) it is signed by a CA kept in
``seed.local_ca_file`` and its PCR0 is the SHA-384 of the reproducible build of the code actually running, so changing
the code seals the keys.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from strongroom.attestation import verify_nitro
from strongroom.attestation.recipient import Recipient
from strongroom.attestation.testca import load_or_create_ca
from strongroom.broker.attestation.local import LocalAttestor
from strongroom.broker.attestation.nsm import NitroAttestor
from strongroom.broker.audit_log import AuditWriteError, HashChainLog
from strongroom.broker.build import build_artifact, measurement
from strongroom.broker.config import BrokerConfig
from strongroom.broker.events import EventSink
from strongroom.broker.seed import SeedKeys, SeedSealed, SeedServer, read_sealed, read_token

log = logging.getLogger(__name__)


def make_attestor(config: BrokerConfig) -> LocalAttestor | NitroAttestor:
    if config.seed.attestor == "local":
        if config.production:
            raise SeedSealed("a production broker never accepts the local attestor")
        ca = load_or_create_ca(config.seed.local_ca_file, "strongroom-local-insecure-attestor")
        return LocalAttestor(measurement(build_artifact()), insecure=config.seed.insecure, ca=ca)
    return NitroAttestor()


def seed_server(config: BrokerConfig, token: str) -> SeedServer:
    return SeedServer(config.strongroom_addr, token, config.seed.transit_mount, config.seed.transit_key)


def unseal(config: BrokerConfig, attestor: LocalAttestor | NitroAttestor | None = None) -> tuple[SeedKeys, str]:
    """(seed keys, measurement) or SeedSealed; either way the outcome is in the audit log."""
    # No audit key before the seed opens: only the refusal below may be written unMAC'd (see audit_log).
    audit = HashChainLog(config.audit_log)
    events = EventSink(audit, clock=lambda: dt.datetime.now(dt.UTC).timestamp())
    try:
        attestor = attestor or make_attestor(config)
        server = seed_server(config, read_token(config.seed.token_file))
        recipient = Recipient()
        document = attestor.attest(nonce=secrets.token_bytes(32), public_key=recipient.public_der)
        # the server decides; checking our own document first only gives a clearer message for a broken attestor
        doc = verify_nitro(document, roots=attestor.roots)
        seed = server.release(read_sealed(config.seed.file), document, recipient)
    except Exception as exc:  # whatever goes wrong, the seed stays sealed and the refusal is recorded
        events.emit("seed-release-refused", None, None, details={"why": str(exc)}, critical=True)
        raise SeedSealed(str(exc)) from None
    try:
        audit.set_key(seed.audit_mac_key)
    except AuditWriteError as exc:
        raise SeedSealed(str(exc)) from None  # the CLI's "refusing to serve: …"
    events.emit("seed-released", None, None, details={"measurement": doc.measurement, "module_id": doc.module_id,
                                                      "attestor": attestor.kind})
    return seed, doc.measurement
