"""``write_once=true`` mounts: a key takes one version; every later change is refused and changes nothing."""

from __future__ import annotations

import asyncio

import pytest

from strongroom.core.logical import InvalidRequest
from strongroom.engines.kv.backend import KVBackend
from strongroom.framework import BackendContext
from tests.kv.harness import KV

ONE_VERSION = 'this mount is write-once: version 1 of "db/password" already exists; write a new key instead'


@pytest.fixture
async def kv() -> KV:
    store = await KV.create({"write_once": "true"})
    assert (await store.put("db/password", {"data": "hunter2"})).status == 200
    return store


async def _unchanged(kv: KV) -> None:
    got = await kv.read("data/db/password")
    assert got.status == 200
    assert got.data["data"] == {"data": "hunter2"}  # type: ignore[index]
    meta = (await kv.read("metadata/db/password")).data
    assert meta is not None and meta["current_version"] == 1 and list(meta["versions"]) == ["1"]
    assert meta["versions"]["1"]["deletion_time"] == "" and meta["versions"]["1"]["destroyed"] is False
    assert meta["max_versions"] == 0 and meta["delete_version_after"] == "0s"


async def test_second_write_is_refused(kv: KV) -> None:
    res = await kv.put("db/password", {"data": "overwrite"})
    assert res.status == 400 and res.errors == [ONE_VERSION]
    res = await kv.put("db/password", {"data": "overwrite"}, cas=1)
    assert res.errors == [ONE_VERSION]
    await _unchanged(kv)


async def test_patch_is_refused(kv: KV) -> None:
    res = await kv.patch("data/db/password", {"data": {"data": "patched"}})
    assert res.status == 400 and res.errors == [ONE_VERSION]
    await _unchanged(kv)


@pytest.mark.parametrize("verb", ["delete", "undelete", "destroy"])
async def test_version_operations_are_refused(kv: KV, verb: str) -> None:
    res = await kv.write(f"{verb}/db/password", {"versions": [1]})
    assert res.status == 400
    assert res.errors == [
        'this mount is write-once: versions of "db/password" cannot be deleted, undeleted or destroyed'
    ]
    await _unchanged(kv)


async def test_soft_delete_and_metadata_delete_are_refused(kv: KV) -> None:
    res = await kv.delete("data/db/password")
    assert res.status == 400 and "write-once" in res.error
    res = await kv.delete("metadata/db/password")
    assert res.status == 400
    assert res.errors == ['this mount is write-once: "db/password" and its version cannot be deleted']
    await _unchanged(kv)


async def test_retention_settings_cannot_change(kv: KV) -> None:
    for body in ({"max_versions": 1}, {"delete_version_after": "1s"}):
        for verb in (kv.write, kv.patch):
            res = await verb("metadata/db/password", body)
            assert res.status == 400, (verb, body)
            assert "max_versions and delete_version_after" in res.error
    res = await kv.write("config", {"delete_version_after": "1h"})
    assert res.status == 400 and res.errors == ["this mount is write-once: delete_version_after cannot be set"]
    assert (await kv.read("config")).data["delete_version_after"] == "0s"  # type: ignore[index]
    await _unchanged(kv)
    # describing a key stays possible; so does hvac's update_metadata, which always sends delete_version_after=0s
    ok = await kv.write("metadata/db/password", {"custom_metadata": {"owner": "team-a"}, "delete_version_after": "0s"})
    assert ok.status == 204
    assert (await kv.read("metadata/db/password")).data["custom_metadata"] == {"owner": "team-a"}  # type: ignore[index]


async def test_new_keys_reads_and_lists_work_normally(kv: KV) -> None:
    assert (await kv.put("db/other", {"data": "x"})).status == 200
    assert (await kv.list("metadata/db/")).data == {"keys": ["other", "password"]}
    assert (await kv.read("subkeys/db/password")).data["subkeys"] == {"data": None}  # type: ignore[index]
    # metadata written ahead of the first version does not use up the key's one write
    assert (await kv.write("metadata/db/third", {"custom_metadata": {"o": "t"}})).status == 204
    assert (await kv.put("db/third", {"data": "y"})).status == 200
    assert (await kv.put("db/third", {"data": "z"})).status == 400
    # missing keys behave as in Vault (nothing to protect): 204/404, and nothing is created
    assert (await kv.write("destroy/db/missing", {"versions": [1]})).status == 204
    assert (await kv.patch("data/db/missing", {"data": {"a": 1}})).status == 404
    assert await kv.stored_metadata("db/missing") is None


async def test_concurrent_first_writes_leave_exactly_one_version() -> None:
    kv = await KV.create({"write_once": "true"})
    results = await asyncio.gather(*(kv.put("race", {"n": i}) for i in range(20)))
    assert sorted(r.status for r in results) == [200] + [400] * 19
    winner = next(r for r in results if r.status == 200)
    assert winner.data["version"] == 1  # type: ignore[index]
    assert (await kv.read("metadata/race")).data["current_version"] == 1  # type: ignore[index]


async def test_option_values() -> None:
    normal = await KV.create({"write_once": "false"})
    await normal.put("k", {"v": 1})
    assert (await normal.put("k", {"v": 2})).status == 200
    # the mount and tune endpoints ask the engine before storing options...
    with pytest.raises(InvalidRequest):
        KVBackend.validate_options({"version": "2", "write_once": "perhaps"})
    KVBackend.validate_options({"version": "2", "write_once": "false"})
    # ...and a value that got stored anyway fails safe instead of keeping the server from unsealing
    odd = await KV.create({"write_once": "perhaps"})
    await odd.put("k", {"v": 1})
    assert "write-once" in (await odd.put("k", {"v": 2})).error
    # a tune of the mount options takes effect without a remount
    normal.backend.ctx.options["write_once"] = "true"
    assert (await normal.put("k", {"v": 3})).status == 400
    assert (await normal.delete("metadata/k")).status == 400


async def test_write_once_cannot_be_tuned_away(kv: KV) -> None:
    kv.backend.ctx.options["write_once"] = "false"
    assert (await kv.put("db/password", {"data": "after-tune"})).errors == [ONE_VERSION]
    # nor by a remount or restart over the same storage with the option dropped
    fresh = KVBackend(
        BackendContext(
            storage=kv.view, mount_path="secret/", mount_type="kv", mount_accessor="kv_x", options={"version": "2"}
        )
    )
    await fresh.initialize()
    kv.backend = fresh
    assert (await kv.put("db/password", {"data": "after-restart"})).errors == [ONE_VERSION]
    assert (await kv.write("destroy/db/password", {"versions": [1]})).status == 400
    await _unchanged(kv)
