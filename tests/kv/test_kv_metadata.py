"""KV v2 metadata, listing, config, subkeys and custom_metadata limits — through the backend."""

from __future__ import annotations

import pytest

from tests.kv.harness import KV


@pytest.fixture
async def kv() -> KV:
    return await KV.create()


async def test_metadata_read_shape(kv: KV) -> None:
    await kv.put("app/one", {"a": 1})
    await kv.put("app/one", {"a": 2})
    await kv.delete("data/app/one")
    res = await kv.read("metadata/app/one")
    assert res.status == 200 and res.data is not None
    meta = res.data
    assert set(meta) == {
        "versions",
        "current_version",
        "oldest_version",
        "created_time",
        "updated_time",
        "max_versions",
        "cas_required",
        "delete_version_after",
        "custom_metadata",
    }
    assert meta["current_version"] == 2 and meta["oldest_version"] == 0
    assert meta["max_versions"] == 0 and meta["cas_required"] is False
    assert meta["delete_version_after"] == "0s" and meta["custom_metadata"] is None
    assert set(meta["versions"]) == {"1", "2"}
    assert meta["versions"]["1"]["deletion_time"] == "" and meta["versions"]["2"]["deletion_time"] != ""
    assert meta["updated_time"] == meta["versions"]["2"]["created_time"]
    assert meta["created_time"] == meta["versions"]["1"]["created_time"]
    assert (await kv.read("metadata/app/none")).status == 404


async def test_metadata_write_sets_settings_without_a_new_version(kv: KV) -> None:
    await kv.put("k", {"a": 1})
    res = await kv.write(
        "metadata/k",
        {"max_versions": 5, "cas_required": True, "delete_version_after": "3h25m19s", "custom_metadata": {"o": "t"}},
    )
    assert res.status == 204
    meta = (await kv.read("metadata/k")).data
    assert meta is not None
    assert meta["max_versions"] == 5 and meta["cas_required"] is True
    assert meta["delete_version_after"] == "3h25m19s"
    assert meta["custom_metadata"] == {"o": "t"} and meta["current_version"] == 1
    # custom_metadata shows on data reads and writes
    assert (await kv.read("data/k")).data["metadata"]["custom_metadata"] == {"o": "t"}  # type: ignore[index]
    # a write with nothing in it changes nothing and creates nothing
    assert (await kv.write("metadata/empty", {})).status == 204
    assert (await kv.read("metadata/empty")).status == 404
    # weakly typed values become strings, as Vault's mapstructure does
    await kv.write("metadata/k", {"custom_metadata": {"n": 3, "b": True, "f": 1.5}})
    assert (await kv.read("metadata/k")).data["custom_metadata"] == {"n": "3", "b": "1", "f": "1.5"}  # type: ignore[index]


async def test_metadata_write_warns_when_mount_mandates_cas(kv: KV) -> None:
    await kv.write("config", {"cas_required": True})
    res = await kv.write("metadata/w", {"cas_required": False})
    assert res.status == 200
    assert res.warnings == [
        '"cas_required" set to false, but is mandated by backend config. This value will be ignored.'
    ]


async def test_metadata_patch(kv: KV) -> None:
    res = await kv.patch("metadata/none", {"max_versions": 3})
    assert res.status == 404 and res.data is None
    await kv.put("p", {"a": 1})
    await kv.write("metadata/p", {"custom_metadata": {"keep": "1", "drop": "2"}, "max_versions": 7})
    assert (
        await kv.patch("metadata/p", {"custom_metadata": {"drop": None, "add": "3"}, "cas_required": True})
    ).status == 204
    meta = (await kv.read("metadata/p")).data
    assert meta is not None
    assert meta["custom_metadata"] == {"keep": "1", "add": "3"}
    assert meta["max_versions"] == 7 and meta["cas_required"] is True
    await kv.patch("metadata/p", {"delete_version_after": "1m"})
    assert (await kv.read("metadata/p")).data["delete_version_after"] == "1m0s"  # type: ignore[index]
    assert (await kv.patch("metadata/p", {"max_versions": -1})).status == 400


async def test_metadata_delete_removes_every_version(kv: KV) -> None:
    for i in range(3):
        await kv.put("gone", {"v": i})
    assert (await kv.delete("metadata/gone")).status == 204
    assert (await kv.read("metadata/gone")).status == 404
    assert (await kv.read("data/gone", version=1)).status == 404
    for n in (1, 2, 3):
        assert await kv.stored_version("gone", n) is None
    assert await kv.stored_metadata("gone") is None
    assert (await kv.delete("metadata/gone")).status == 204


async def test_list_keys_and_folders(kv: KV) -> None:
    for key in ("foo", "foo/bar", "foo/baz/qux", "zed", "a/b/c"):
        await kv.put(key, {"v": 1})
    root = await kv.list("metadata/")
    assert root.status == 200 and root.data == {"keys": ["a/", "foo", "foo/", "zed"]}
    sub = await kv.list("metadata/foo")
    assert sub.data == {"keys": ["bar", "baz/"]}
    assert (await kv.list("metadata/foo/baz/")).data == {"keys": ["qux"]}
    empty = await kv.list("metadata/nothing/")
    assert empty.status == 404 and empty.errors == []
    # a key whose versions are all destroyed is still listed; one whose metadata was deleted is not
    await kv.write("destroy/zed", {"versions": [1]})
    await kv.delete("metadata/foo")
    assert (await kv.list("metadata/")).data == {"keys": ["a/", "foo/", "zed"]}


async def test_list_walks_storage_in_pages(kv: KV) -> None:
    names = [f"svc-{i:05d}" for i in range(2345)]
    for name in names:
        await kv.write("metadata/many/" + name, {"max_versions": 1})
    res = await kv.list("metadata/many/")
    assert res.data is not None and res.data["keys"] == names
    page = await kv.list("metadata/many/", limit=10, after="svc-00100")
    assert page.data == {"keys": names[101:111]}
    assert (await kv.list("metadata/many/", limit=-1)).status == 400


async def test_custom_metadata_limits(kv: KV) -> None:
    too_many = {f"k{i}": "v" for i in range(65)}
    res = await kv.write("metadata/c", {"custom_metadata": too_many})
    assert res.status == 400
    assert res.errors == [
        "1 error occurred:\n\t* custom_metadata validation failed: "
        "payload must contain at most 64 keys, provided 65\n\n"
    ]
    res = await kv.write("metadata/c", {"custom_metadata": {"k" * 129: "v", "e": ""}})
    assert res.status == 400
    assert res.errors[0].startswith("2 errors occurred:\n\t* ")
    assert (
        'custom_metadata validation failed: length of value for key "e" is 0 but must be 0 < len(value) <= 512'
        in res.error
    )
    assert f'length of key "{"k" * 129}" is 129 but must be 0 < len(key) <= 128' in res.error
    res = await kv.write("metadata/c", {"custom_metadata": {"ok": "bell\x07"}})
    assert 'value for key "ok" contains unprintable characters' in res.error
    res = await kv.write("metadata/c", {"custom_metadata": {"v": "x" * 513}})
    assert "is 513 but must be 0 < len(value) <= 512" in res.error
    res = await kv.patch("metadata/c", {"custom_metadata": {"a": "b"}})
    assert res.status == 404
    assert await kv.stored_metadata("c") is None
    assert (await kv.write("metadata/c", {"custom_metadata": {f"k{i}": "v" * 512 for i in range(64)}})).status == 204


async def test_config_defaults_write_and_durations(kv: KV) -> None:
    res = await kv.read("config")
    assert res.data == {"max_versions": 0, "cas_required": False, "delete_version_after": "0s"}
    assert (
        await kv.write("config", {"max_versions": 4, "cas_required": True, "delete_version_after": 12319})
    ).status == 204
    assert (await kv.read("config")).data == {
        "max_versions": 4,
        "cas_required": True,
        "delete_version_after": "3h25m19s",
    }
    await kv.write("config", {"delete_version_after": "768h"})
    assert (await kv.read("config")).data["delete_version_after"] == "768h0m0s"  # type: ignore[index]
    await kv.write("config", {"delete_version_after": "-5m"})
    assert (await kv.read("config")).data["delete_version_after"] == "-1s"  # type: ignore[index]
    await kv.write("config", {"delete_version_after": "0s"})
    assert (await kv.read("config")).data["delete_version_after"] == "0s"  # type: ignore[index]
    assert (await kv.write("config", {"delete_version_after": "soon"})).status == 400
    assert (await kv.write("config", {"max_versions": -2})).status == 400
    assert (await kv.write("config", {"max_versions": "many"})).status == 400
    assert (await kv.read("config")).data["max_versions"] == 4  # type: ignore[index]


async def test_subkeys(kv: KV) -> None:
    secret = {"foo": "abc", "bar": {"baz": "def", "deep": {"x": 1}}, "quux": {}, "list": [1, 2]}
    await kv.put("s", secret)
    await kv.put("s", {"only": "v2"})
    res = await kv.read("subkeys/s", version=1)
    assert res.status == 200 and res.data is not None
    assert res.data["subkeys"] == {"foo": None, "bar": {"baz": None, "deep": {"x": None}}, "quux": None, "list": None}
    assert res.data["metadata"]["version"] == 1
    assert (await kv.read("subkeys/s", version=1, depth=1)).data["subkeys"] == {  # type: ignore[index]
        "foo": None,
        "bar": None,
        "quux": None,
        "list": None,
    }
    two = (await kv.read("subkeys/s", version=1, depth="2")).data["subkeys"]  # type: ignore[index]
    assert two["bar"] == {"baz": None, "deep": None}
    assert (await kv.read("subkeys/s")).data["subkeys"] == {"only": None}  # type: ignore[index]
    assert b"abc" not in repr(res.data).encode()
    await kv.delete("data/s")
    gone = await kv.read("subkeys/s")
    assert gone.status == 404 and gone.data["subkeys"] is None  # type: ignore[index]
    assert (await kv.read("subkeys/none")).status == 404
    assert (await kv.read("subkeys/s", depth=-1)).status == 400
