"""KV v2 data: versions, check-and-set, PATCH, soft delete, undelete, destroy, max_versions — through the backend."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from strongroom.core.logical import Operation
from tests.kv.harness import KV

RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


@pytest.fixture
async def kv() -> KV:
    return await KV.create()


async def test_write_then_read_latest_and_by_version(kv: KV) -> None:
    first = await kv.put("app/db", {"password": "one"})
    assert first.status == 200
    assert first.data is not None
    assert first.data["version"] == 1
    assert first.data["deletion_time"] == "" and first.data["destroyed"] is False
    assert first.data["custom_metadata"] is None
    assert RFC3339_NANO.match(first.data["created_time"])
    await kv.put("app/db", {"password": "two"})

    latest = await kv.read("data/app/db")
    assert latest.status == 200 and latest.data is not None
    assert latest.data["data"] == {"password": "two"}
    assert latest.data["metadata"]["version"] == 2
    assert set(latest.data["metadata"]) == {"version", "created_time", "deletion_time", "destroyed", "custom_metadata"}

    # the query string arrives as strings; version is an int field
    old = await kv.read("data/app/db", version="1")
    assert old.data is not None and old.data["data"] == {"password": "one"}
    assert old.data["metadata"]["version"] == 1
    # 0 and negative mean "latest", as in Vault
    assert (await kv.read("data/app/db", version=0)).data["data"] == {"password": "two"}  # type: ignore[index]


async def test_missing_key_and_missing_version_are_plain_404(kv: KV) -> None:
    missing = await kv.read("data/nope")
    assert missing.status == 404 and missing.data is None and missing.errors == []
    await kv.put("k", {"a": 1})
    assert (await kv.read("data/k", version=7)).status == 404
    bad = await kv.read("data/k", version="seven")
    assert bad.status == 400 and "version" in bad.error


async def test_values_are_encrypted_in_storage(kv: KV) -> None:
    await kv.put("bank/vault", {"pin": "correct-horse-battery-staple"})
    assert b"correct-horse-battery-staple" not in kv.raw_bytes()
    assert await kv.stored_version("bank/vault", 1) is not None


async def test_no_data_and_bad_types_are_refused_and_change_nothing(kv: KV) -> None:
    res = await kv.write("data/k", {"options": {}})
    assert res.status == 400 and res.errors == ["no data provided"]
    res = await kv.write("data/k", {"data": "not-a-map"})
    assert res.status == 400
    res = await kv.write("data/k", {"data": {"a": 1}, "options": "nope"})
    assert res.status == 400
    assert await kv.stored_metadata("k") is None
    assert (await kv.read("data/k")).status == 404


async def test_check_and_set(kv: KV) -> None:
    # cas=0: only when the key does not exist yet
    assert (await kv.put("c", {"v": 1}, cas=0)).status == 200
    res = await kv.put("c", {"v": 2}, cas=0)
    assert res.status == 400 and res.errors == ["check-and-set parameter did not match the current version"]
    res = await kv.put("c", {"v": 2}, cas=5)
    assert res.errors == ["check-and-set parameter did not match the current version"]
    assert (await kv.put("c", {"v": 2}, cas=1)).data["version"] == 2  # type: ignore[index]
    res = await kv.put("c", {"v": 3}, cas="abc")
    assert res.status == 400 and res.errors == ["error parsing check-and-set parameter"]
    # weakly typed like Vault: a numeric string works
    assert (await kv.put("c", {"v": 3}, cas="2")).status == 200
    assert (await kv.read("data/c")).data["data"] == {"v": 3}  # type: ignore[index]


async def test_cas_required_by_mount_config_and_by_key_metadata(kv: KV) -> None:
    await kv.write("config", {"cas_required": True})
    res = await kv.put("m", {"v": 1})
    assert res.status == 400 and res.errors == ["check-and-set parameter required for this call"]
    assert (await kv.put("m", {"v": 1}, cas=0)).status == 200
    await kv.write("config", {"cas_required": False})
    await kv.write("metadata/m", {"cas_required": True})
    res = await kv.put("m", {"v": 2})
    assert res.errors == ["check-and-set parameter required for this call"]
    assert (await kv.put("m", {"v": 2}, cas=1)).status == 200


async def test_existence_check_decides_create_or_update(kv: KV) -> None:
    assert (await kv.put("e", {"v": 1})).operation is Operation.CREATE
    assert (await kv.put("e", {"v": 2})).operation is Operation.UPDATE
    # destroying every version keeps the key: the next write is still an update (Vault)
    await kv.write("destroy/e", {"versions": [1, 2]})
    assert (await kv.put("e", {"v": 3})).operation is Operation.UPDATE
    assert (await kv.write("metadata/e", {"max_versions": 3})).operation is Operation.UPDATE
    # only removing the metadata makes it new again
    assert (await kv.delete("metadata/e")).status == 204
    assert (await kv.put("e", {"v": 4})).operation is Operation.CREATE
    # metadata written before any data makes the key exist
    assert (await kv.write("metadata/pre", {"max_versions": 2})).operation is Operation.CREATE
    assert (await kv.put("pre", {"v": 1})).operation is Operation.UPDATE


async def test_soft_delete_latest_answers_404_with_body(kv: KV) -> None:
    await kv.put("s", {"v": 1})
    await kv.put("s", {"v": 2})
    assert (await kv.delete("data/s")).status == 204
    res = await kv.read("data/s")
    assert res.status == 404
    assert res.data is not None and res.data["data"] is None
    assert res.data["metadata"]["version"] == 2 and RFC3339_NANO.match(res.data["metadata"]["deletion_time"])
    assert res.data["metadata"]["destroyed"] is False
    # older version still readable; the deleted version's data is kept (soft delete)
    assert (await kv.read("data/s", version=1)).data["data"] == {"v": 1}  # type: ignore[index]
    assert (await kv.stored_version("s", 2))["data"] == {"v": 2}
    # deleting again is a no-op; deleting a missing key too
    assert (await kv.delete("data/s")).status == 204
    assert (await kv.delete("data/missing")).status == 204


async def test_delete_undelete_versions(kv: KV) -> None:
    for i in range(3):
        await kv.put("d", {"v": i})
    res = await kv.write("delete/d", {"versions": []})
    assert res.status == 400 and res.errors == ["No version number provided"]
    assert (await kv.write("delete/d", {"versions": [1, 3, 99]})).status == 204
    assert (await kv.read("data/d", version=1)).status == 404
    assert (await kv.read("data/d", version=2)).status == 200
    assert (await kv.read("data/d")).status == 404
    # comma-separated versions are accepted like Vault's TypeCommaIntSlice
    assert (await kv.write("undelete/d", {"versions": "1,3"})).status == 204
    assert (await kv.read("data/d", version=1)).data["data"] == {"v": 0}  # type: ignore[index]
    latest = await kv.read("data/d")
    assert latest.status == 200 and latest.data["metadata"]["deletion_time"] == ""  # type: ignore[index]
    res = await kv.write("undelete/d", {})
    assert res.status == 400 and res.errors == ["No version number provided"]
    assert (await kv.write("undelete/missing", {"versions": [1]})).status == 204


async def test_destroy_removes_data_and_cannot_be_undone(kv: KV) -> None:
    await kv.put("x", {"secret": "gone-soon"})
    await kv.put("x", {"secret": "stays"})
    res = await kv.write("destroy/x", {"versions": []})
    assert res.status == 400 and res.errors == ["no version number provided"]
    assert (await kv.write("destroy/x", {"versions": [1]})).status == 204
    assert await kv.stored_version("x", 1) is None
    res = await kv.read("data/x", version=1)
    assert res.status == 404 and res.data is not None
    assert res.data["data"] is None and res.data["metadata"]["destroyed"] is True
    assert (await kv.write("undelete/x", {"versions": [1]})).status == 204
    assert (await kv.read("data/x", version=1)).status == 404
    meta = await kv.read("metadata/x")
    assert meta.data["versions"]["1"]["destroyed"] is True  # type: ignore[index]
    assert (await kv.read("data/x")).data["data"] == {"secret": "stays"}  # type: ignore[index]


async def test_patch_is_a_json_merge_patch_on_the_latest_version(kv: KV) -> None:
    await kv.put("p", {"user": "u", "pass": "p1", "nested": {"a": 1, "b": 2}, "drop": "me"})
    res = await kv.patch("data/p", {"data": {"pass": "p2", "nested": {"b": None, "c": 3}, "drop": None}})
    assert res.status == 200 and res.data is not None and res.data["version"] == 2
    assert set(res.data) == {"version", "created_time", "deletion_time", "destroyed", "custom_metadata"}
    got = await kv.read("data/p")
    assert got.data["data"] == {"user": "u", "pass": "p2", "nested": {"a": 1, "c": 3}}  # type: ignore[index]
    assert (await kv.read("data/p", version=1)).data["data"]["pass"] == "p1"  # type: ignore[index]
    # cas is honoured
    res = await kv.patch("data/p", {"data": {"x": 1}, "options": {"cas": 1}})
    assert res.status == 400 and res.errors == ["check-and-set parameter did not match the current version"]
    assert (await kv.patch("data/p", {"data": {"x": 1}, "options": {"cas": 2}})).status == 200


async def test_patch_needs_data_an_existing_key_and_a_live_version(kv: KV) -> None:
    res = await kv.patch("data/p", {})
    assert res.status == 400 and res.errors == ["no data provided"]
    res = await kv.patch("data/none", {"data": {"a": 1}})
    assert res.status == 404 and res.data is None
    await kv.put("p", {"a": 1})
    await kv.delete("data/p")
    res = await kv.patch("data/p", {"data": {"a": 2}})
    assert res.status == 404 and res.data is not None
    assert res.data["version"] == 1 and res.data["deletion_time"] != ""
    assert (await kv.read("metadata/p")).data["current_version"] == 1  # type: ignore[index]


async def test_old_versions_beyond_max_versions_are_removed(kv: KV) -> None:
    await kv.write("config", {"max_versions": 3})
    for i in range(1, 6):
        await kv.put("mv", {"v": i})
    meta = (await kv.read("metadata/mv")).data
    assert meta is not None
    assert sorted(meta["versions"]) == ["3", "4", "5"]
    assert meta["oldest_version"] == 3 and meta["current_version"] == 5
    assert (await kv.read("data/mv", version=2)).status == 404
    for gone in (1, 2):
        assert await kv.stored_version("mv", gone) is None
    assert (await kv.stored_version("mv", 3))["data"] == {"v": 3}
    # the larger of the key's and the mount's max_versions applies (Vault's rule)
    await kv.write("metadata/mv", {"max_versions": 4})
    for i in range(6, 9):
        await kv.put("mv", {"v": i})
    meta = (await kv.read("metadata/mv")).data
    assert sorted(meta["versions"], key=int) == ["5", "6", "7", "8"]  # type: ignore[index]


async def test_default_max_versions_is_ten(kv: KV) -> None:
    for i in range(12):
        await kv.put("ten", {"v": i})
    meta = (await kv.read("metadata/ten")).data
    assert meta is not None and len(meta["versions"]) == 10 and meta["oldest_version"] == 3
    assert await kv.stored_version("ten", 2) is None


async def test_delete_version_after_sets_deletion_time_and_expires(kv: KV) -> None:
    await kv.write("config", {"delete_version_after": "1s"})
    res = await kv.put("t", {"v": 1})
    assert res.data is not None and res.data["deletion_time"] != ""
    assert (await kv.read("data/t")).status == 200  # scheduled, not yet past
    deadline = time.monotonic() + 5
    while (await kv.read("data/t")).status != 404:
        assert time.monotonic() < deadline, "version was not soft-deleted after delete_version_after"
        await asyncio.sleep(0.05)
    # a negative mount value disables it for every key
    await kv.write("config", {"delete_version_after": "-1s"})
    await kv.write("metadata/t2", {"delete_version_after": "1h"})
    assert (await kv.put("t2", {"v": 1})).data["deletion_time"] == ""  # type: ignore[index]


async def test_concurrent_writes_get_distinct_versions(kv: KV) -> None:
    results = await asyncio.gather(*(kv.put("race", {"n": i}) for i in range(25)))
    assert sorted(r.data["version"] for r in results) == list(range(1, 26))  # type: ignore[index]
    meta = (await kv.read("metadata/race")).data
    assert meta["current_version"] == 25 and len(meta["versions"]) == 10  # type: ignore[index]
    for n in range(1, 16):
        assert await kv.stored_version("race", n) is None


@pytest.mark.parametrize("bad", ["a//b", "a/./b", "a/../b", "../x", "./x", "a/..", "tab\tkey"])
async def test_traversal_and_empty_segments_are_refused(kv: KV, bad: str) -> None:
    res = await kv.put(bad, {"v": 1})
    assert res.status == 400 and "invalid path" in res.error
    assert (await kv.read(f"data/{bad}")).status == 400
    assert (await kv.write(f"metadata/{bad}", {"max_versions": 1})).status == 400
    assert not any("/metadata/" in k or "/versions/" in k for k in kv.storage._keys)


async def test_trailing_slash_is_not_a_key(kv: KV) -> None:
    res = await kv.put("folder/", {"v": 1})
    assert res.status == 404  # unsupported path, as Vault's data/ pattern refuses a trailing slash


def _nested(levels: int) -> dict:
    node: dict = {"leaf": "v"}
    for _ in range(levels - 1):
        node = {"n": node}
    return node


async def test_deeply_nested_data_is_refused_not_crashed(kv: KV) -> None:
    assert (await kv.put("deep", _nested(100))).status == 200
    res = await kv.put("deep", _nested(101))
    assert res.status == 400 and "nested too deeply" in res.error
    res = await kv.patch("data/deep", {"data": _nested(400)})
    assert res.status == 400 and "nested too deeply" in res.error
    # a patch whose result would be too deep is refused as well
    res = await kv.patch("data/deep", {"data": {"n": _nested(100)}})
    assert res.status == 400
    assert (await kv.read("metadata/deep")).data["current_version"] == 1  # type: ignore[index]
