"""Transport-encrypted writes (the engine's side only), KV version 1 passthrough, and mount options."""

from __future__ import annotations

from typing import Any

import pytest

from strongroom.core.logical import InvalidRequest
from strongroom.engines.kv.backend import KVBackend
from tests.kv.harness import KV


class FakeTransport:
    """Stands in for the core's transport key service: 'opens' envelopes it recognises, refuses anything else."""

    def __init__(self) -> None:
        self.envelopes: dict[str, Any] = {}
        self.destinations: list[str | None] = []

    async def decrypt_json(self, envelope: str, path: str | None = None) -> Any:
        self.destinations.append(path)
        if envelope not in self.envelopes:
            raise ValueError(f"bad envelope {envelope}")
        return self.envelopes[envelope]


async def test_transport_envelope_is_opened_and_stored_as_data() -> None:
    transport = FakeTransport()
    transport.envelopes["env-1"] = {"password": "from-the-envelope"}
    transport.envelopes["env-list"] = ["not", "a", "map"]
    kv = await KV.create(services={"transport": transport})
    res = await kv.write("data/t", {"transport": "env-1", "options": {"cas": 0}})
    assert res.status == 200 and res.data["version"] == 1  # type: ignore[index]
    assert (await kv.read("data/t")).data["data"] == {"password": "from-the-envelope"}  # type: ignore[index]
    assert transport.destinations[-1] is not None and transport.destinations[-1].endswith("data/t")
    # cas still applies to an encrypted write
    res = await kv.write("data/t", {"transport": "env-1", "options": {"cas": 0}})
    assert res.errors == ["check-and-set parameter did not match the current version"]
    for bad in ("tampered", "env-list"):
        res = await kv.write("data/t", {"transport": bad})
        assert res.status == 400 and res.errors == ["invalid transport envelope"]
    res = await kv.write("data/t", {"transport": "env-1", "data": {"a": 1}})
    assert res.status == 400 and res.errors == ["provide either data or transport, not both"]
    assert (await kv.read("metadata/t")).data["current_version"] == 1  # type: ignore[index]


async def test_transport_without_the_service_is_refused() -> None:
    kv = await KV.create()
    res = await kv.write("data/t", {"transport": "anything"})
    assert res.status == 400 and "transport" in res.error
    assert (await kv.read("data/t")).status == 404


async def test_kv_version_1_passthrough() -> None:
    kv = await KV.create({"version": "1"})
    first = await kv.write("app/config", {"user": "u", "pass": "p"})
    assert first.status == 204 and first.operation is not None and first.operation.value == "create"
    assert (await kv.read("app/config")).data == {"user": "u", "pass": "p"}
    second = await kv.write("app/config", {"user": "v"})
    assert second.operation is not None and second.operation.value == "update"
    assert (await kv.read("app/config")).data == {"user": "v"}
    assert (await kv.list("app")).data == {"keys": ["config"]}
    assert (await kv.write("app/empty", {})).errors == ["missing data fields"]
    assert (await kv.write("a/../b", {"x": 1})).status == 400
    assert (await kv.delete("app/config")).status == 204
    assert (await kv.read("app/config")).status == 404


async def test_kv_version_1_write_once() -> None:
    kv = await KV.create({"version": "1", "write_once": "true"})
    assert (await kv.write("k", {"v": 1})).status == 204
    assert (await kv.write("k", {"v": 2})).status == 400
    assert (await kv.delete("k")).status == 400
    assert (await kv.read("k")).data == {"v": 1}
    kv.backend.ctx.options["write_once"] = "false"  # sticky: a tune does not reopen the entries
    assert (await kv.write("k", {"v": 3})).status == 400
    # a v1 key that looks like the engine's own records is just a key
    assert (await kv.write("sys/write-once", {"v": 1})).status == 204
    assert (await kv.read("sys/write-once")).data == {"v": 1}


async def test_bad_version_option_is_refused_at_mount() -> None:
    with pytest.raises(InvalidRequest):
        await KV.create({"version": "3"})
    with pytest.raises(InvalidRequest):
        KVBackend.validate_options({"version": "3"})
