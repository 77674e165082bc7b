"""Transport encryption: the CLI's envelope opens only on the server, with the right key version, untampered."""

from __future__ import annotations

import base64
import json

import pytest

from strongroom import transport_crypto as tc
from strongroom.core.barrier import Barrier
from strongroom.core.transport import TransportKeys
from strongroom.crypto import new_key
from strongroom.storage.memory import InMemoryStorage

PLAIN = {"data": {"data": "s3cr3t-value-XYZ"}, "options": {"cas": 0}}


async def _keys(retention: int = 3600) -> tuple[TransportKeys, InMemoryStorage]:
    storage = InMemoryStorage()
    barrier = Barrier(storage)
    await barrier.initialize(new_key())
    return TransportKeys(barrier.view("sys/transport/"), retention=retention), storage


async def test_round_trip_and_private_key_only_behind_barrier() -> None:
    keys, storage = await _keys()
    pub = await keys.public_key()
    assert pub["algorithm"] == tc.ALGORITHM and pub["version"] == 1
    assert pub["fingerprint"] == tc.fingerprint(base64.b64decode(pub["key"]))
    envelope = tc.seal_json(pub["key"], pub["version"], PLAIN)
    assert "s3cr3t" not in base64.b64decode(envelope).decode()
    assert await keys.decrypt_json(envelope) == PLAIN
    # the stored keyring is barrier ciphertext: neither the private nor the public key appears in storage
    raw = b"".join(storage._data.values())
    assert base64.b64decode(pub["key"]) not in raw


async def test_tampering_and_relabelling_fail() -> None:
    keys, _ = await _keys()
    pub = await keys.public_key()
    doc = json.loads(base64.b64decode(tc.seal_json(pub["key"], pub["version"], PLAIN)))
    ct = bytearray(base64.b64decode(doc["ct"]))
    ct[0] ^= 1
    bad = dict(doc, ct=base64.b64encode(bytes(ct)).decode())
    with pytest.raises(tc.EnvelopeError, match="failed to decrypt"):
        await keys.decrypt_json(base64.b64encode(json.dumps(bad).encode()).decode())
    await keys.rotate()
    relabelled = dict(doc, key_version=2)
    with pytest.raises(tc.EnvelopeError):
        await keys.decrypt_json(base64.b64encode(json.dumps(relabelled).encode()).decode())


@pytest.mark.parametrize(
    "junk", ["", "!!!", base64.b64encode(b"[]").decode(), base64.b64encode(b'{"v":1}').decode(), 7]
)
async def test_malformed_envelopes_are_refused_with_safe_messages(junk: object) -> None:
    keys, _ = await _keys()
    with pytest.raises(tc.EnvelopeError):
        await keys.decrypt_json(junk)  # type: ignore[arg-type]


async def test_rotation_keeps_old_version_for_in_flight_values_then_retires_it() -> None:
    keys, _ = await _keys()
    old = await keys.public_key()
    in_flight = tc.seal_json(old["key"], old["version"], PLAIN)
    new = await keys.rotate()
    assert new["version"] == 2 and new["fingerprint"] != old["fingerprint"]
    assert (await keys.public_key())["version"] == 2
    assert await keys.decrypt_json(in_flight) == PLAIN
    keys.retention = -1
    with pytest.raises(tc.EnvelopeError, match="retired"):
        await keys.decrypt_json(in_flight)
    await keys.rotate()
    with pytest.raises(tc.EnvelopeError, match="unknown"):
        await keys.decrypt_json(in_flight)


async def test_envelope_bound_to_its_destination_opens_only_there() -> None:
    keys, _ = await _keys()
    pub = await keys.public_key()
    dest = "secret/data/k8s/default/s-emoji/canary/v1"
    envelope = tc.seal_json(pub["key"], pub["version"], PLAIN, context=dest)
    assert await keys.decrypt_json(envelope, path=dest) == PLAIN
    assert await keys.decrypt_json(envelope, path="/v1/" + dest) == PLAIN
    with pytest.raises(tc.EnvelopeError, match="different path"):
        await keys.decrypt_json(envelope, path="secret/data/k8s/default/s-attacker/canary/v1")
    # rewriting the ctx field to match another path breaks decryption: ctx is bound into the HPKE key schedule
    doc = json.loads(base64.b64decode(envelope))
    moved = base64.b64encode(json.dumps(dict(doc, ctx="secret/data/k8s/default/s-attacker/x/v1")).encode()).decode()
    with pytest.raises(tc.EnvelopeError, match="failed to decrypt"):
        await keys.decrypt_json(moved, path="secret/data/k8s/default/s-attacker/x/v1")
