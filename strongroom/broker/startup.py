"""Starting the broker: attest, have the key-release component open the seed, and only then serve.

With ``attestor = "nitro"`` the document comes from the Nitro Security Module and must chain to the AWS root; with the
local attestor (development only, refused by a production configuration) the measurement is the SHA-384 of the
reproducible build of the code actually running, so changing the code seals the keys.
"""

from __future__ import annotations

import datetime as dt
import logging

from strongroom.broker.attestation.local import LocalAttestor
from strongroom.broker.attestation.nsm import NitroAttestor
from strongroom.broker.audit_log import AuditWriteError, HashChainLog
from strongroom.broker.build import build_artifact, measurement
from strongroom.broker.config import BrokerConfig
from strongroom.broker.events import EventSink
from strongroom.broker.recipient import Recipient
from strongroom.broker.seed import KeyRelease, SeedKeys, SeedSealed, read_kek, read_sealed, seed_from

log = logging.getLogger(__name__)


def make_attestor(config: BrokerConfig) -> LocalAttestor | NitroAttestor:
    if config.seed.attestor == "local":
        if config.production:
            raise SeedSealed("a production broker never accepts the local attestor")
        return LocalAttestor(measurement(build_artifact()), insecure=config.seed.insecure)
    return NitroAttestor()


def unseal(config: BrokerConfig, attestor: LocalAttestor | NitroAttestor | None = None) -> tuple[SeedKeys, str]:
    """(seed keys, measurement) or SeedSealed; either way the outcome is in the audit log."""
    # No audit key before the seed opens: only the refusal below may be written unMAC'd (see audit_log).
    audit = HashChainLog(config.audit_log)
    events = EventSink(audit, clock=lambda: dt.datetime.now(dt.UTC).timestamp())
    try:
        attestor = attestor or make_attestor(config)
        release = KeyRelease(read_kek(config.seed.kek_file), attestor.roots)
        recipient = Recipient()
        nonce = release.challenge()
        document = attestor.attest(nonce=nonce, public_key=recipient.public_der)
        wrapped, doc = release.release(read_sealed(config.seed.file), document, nonce)
        seed = seed_from(recipient.open(wrapped))
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
