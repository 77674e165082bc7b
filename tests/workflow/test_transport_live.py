"""The transport key on a live server: published to authenticated callers, rotatable with sudo, old keys still open
envelopes sealed just before a rotation, and a tampered envelope writes nothing."""

from __future__ import annotations

import base64
import json
import secrets

from strongroom import transport_crypto as tc
from strongroom.core.system.people_policies import SECRET_WRITER_POLICY

PATH = "/v1/secret/data/k8s/default/s-emoji/transport/{v}"


def _key(http) -> dict:  # noqa: ANN001
    r = http.get("/v1/sys/transport/key")
    assert r.status_code == 200, r.text
    return r.json()["data"]


def _write(http, version: str, envelope: str):  # noqa: ANN001, ANN202
    return http.post(PATH.format(v=version), json={"transport": envelope, "options": {"cas": 0}})


def _dest(version: str) -> str:
    """Envelopes are sealed for the exact path they are written to."""
    return PATH.format(v=version).removeprefix("/v1/")


def test_key_is_published_only_to_authenticated_callers(server) -> None:  # noqa: ANN001
    with server.http(token="") as anon:
        assert anon.get("/v1/sys/transport/key").status_code in (401, 403)
    root = server.client()
    root.sys.create_or_update_acl_policy(name="secret-writer", policy=SECRET_WRITER_POLICY)
    token = root.auth.token.create(policies=["secret-writer"], ttl="5m")["auth"]["client_token"]
    with server.http(token=token) as writer:
        key = _key(writer)
        assert key["algorithm"] == tc.ALGORITHM
        assert key["fingerprint"] == tc.fingerprint(base64.b64decode(key["key"]))
        # rotating is for operators (sudo), not engineers
        assert writer.post("/v1/sys/transport/rotate").status_code == 403


def test_rotation_keeps_in_flight_envelopes_working(server) -> None:  # noqa: ANN001
    with server.http() as http:
        old = _key(http)
        value = secrets.token_hex(16)
        in_flight = tc.seal_json(old["key"], old["version"], {"data": value}, context=_dest("v1"))
        r = http.post("/v1/sys/transport/rotate")
        assert r.status_code == 200, r.text
        new = _key(http)
        assert new["version"] == old["version"] + 1 and new["fingerprint"] != old["fingerprint"]
        assert _write(http, "v1", in_flight).status_code == 200
        stored = http.get(PATH.format(v="v1")).json()["data"]["data"]
        assert stored == {"data": value}
        fresh = tc.seal_json(new["key"], new["version"], {"data": value + "-2"}, context=_dest("v2"))
        assert _write(http, "v2", fresh).status_code == 200
    # the key survives a restart (it lives behind the barrier)
    server.restart()
    with server.http() as http:
        assert _key(http)["fingerprint"] == new["fingerprint"]


def test_tampered_or_relabelled_envelopes_write_nothing(server) -> None:  # noqa: ANN001
    with server.http() as http:
        key = _key(http)
        value = secrets.token_hex(16)
        sealed = tc.seal_json(key["key"], key["version"], {"data": value}, context=_dest("bad"))
        doc = json.loads(base64.b64decode(sealed))
        ct = bytearray(base64.b64decode(doc["ct"]))
        ct[-1] ^= 0x01
        for bad in (dict(doc, ct=base64.b64encode(bytes(ct)).decode()), dict(doc, key_version=key["version"] + 7)):
            envelope = base64.b64encode(json.dumps(bad).encode()).decode()
            r = _write(http, "bad", envelope)
            assert r.status_code == 400 and value not in r.text
        assert _write(http, "bad", "definitely-not-an-envelope").status_code == 400
        assert http.get(PATH.format(v="bad")).status_code == 404


def test_envelope_cannot_be_replayed_to_another_services_path(server) -> None:  # noqa: ANN001
    """What a TLS-terminating box that saw both the envelope and the token could try: post it to a path it can read."""
    with server.http() as http:
        key = _key(http)
        value = secrets.token_hex(16)
        envelope = tc.seal_json(key["key"], key["version"], {"data": value}, context=_dest("bound"))
        stolen = "/v1/secret/data/k8s/default/s-attacker/loot/v1"
        r = http.post(stolen, json={"transport": envelope, "options": {"cas": 0}})
        assert r.status_code == 400
        assert http.get(stolen).status_code == 404
        assert _write(http, "bound", envelope).status_code == 200
        unbound = tc.seal_json(key["key"], key["version"], {"data": value})
        assert _write(http, "unbound", unbound).status_code == 400
