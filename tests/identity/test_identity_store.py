"""Unit tests of the identity store over a real barrier (in-memory storage): logins, groups, policies, templates."""

from __future__ import annotations

import asyncio

import pytest

from strongroom import crypto
from strongroom.core.barrier import Barrier
from strongroom.core.identity import IdentityStore
from strongroom.core.logical import EntityAlias, PermissionDenied
from strongroom.storage.memory import InMemoryStorage

ACC = "auth_kubernetes_0001"
JWT = "auth_jwt_0002"


class CountingStorage(InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.lists = 0
        self.txns = 0

    async def list(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        self.lists += 1
        return await super().list(*args, **kwargs)

    async def transaction(self, ops):  # noqa: ANN001, ANN201
        self.txns += 1
        return await super().transaction(ops)


@pytest.fixture
async def store() -> tuple[IdentityStore, CountingStorage]:
    storage = CountingStorage()
    barrier = Barrier(storage)
    await barrier.initialize(crypto.new_key())
    s = IdentityStore(barrier.view("sys/identity/"))
    await s.load()
    return s, storage


def _meta(ns: str, name: str) -> dict[str, str]:
    return {"service_account_name": name, "service_account_namespace": ns, "service_account_uid": f"uid-{name}",
            "service_account_secret_name": ""}


async def test_login_creates_then_reuses_without_scanning(store) -> None:  # noqa: ANN001
    s, storage = store
    e1 = await s.entity_for_login(ACC, "kubernetes", EntityAlias("uid-1", _meta("default", "s-emoji")), [])
    txns, lists = storage.txns, storage.lists
    e2 = await s.entity_for_login(ACC, "kubernetes", EntityAlias("uid-1", _meta("default", "s-emoji")), [])
    assert e1.id == e2.id and e1.name.startswith("entity_")
    assert storage.txns == txns, "an unchanged login writes nothing"
    assert storage.lists == lists == 0, "a login never lists storage"
    await s.entity_for_login(ACC, "kubernetes", EntityAlias("uid-1", _meta("default", "s-emoji2")), [])
    ctx = await s.template_context(e1.id)
    assert ctx.aliases[ACC].metadata["service_account_name"] == "s-emoji2"
    assert ctx.aliases[ACC].name == "uid-1"


async def test_concurrent_first_logins_make_one_entity(store) -> None:  # noqa: ANN001
    s, _ = store
    alias = EntityAlias("uid-9", _meta("default", "s-busy"))
    results = await asyncio.gather(*(s.entity_for_login(ACC, "kubernetes", alias, []) for _ in range(20)))
    assert len({e.id for e in results}) == 1
    assert len(await s.list_ids("entity")) == 1


async def test_external_groups_follow_the_groups_claim(store) -> None:  # noqa: ANN001
    s, _ = store
    eng, _ = await s.write_group(name="eng", values={"type": "external", "policies": ["eng"]})
    await s.write_group_alias(alias_id="", name="eng", mount_accessor=JWT, canonical_id=eng["id"],
                              mount_type="jwt", mount_path="auth/jwt/")
    parent, _ = await s.write_group(name="staff", values={"policies": ["staff"], "member_group_ids": [eng["id"]]})
    user = await s.entity_for_login(JWT, "jwt", EntityAlias("user_1"), ["eng", "unknown"])
    assert await s.identity_policies(user.id) == ["eng", "staff"]
    ctx = await s.template_context(user.id)
    assert sorted(g.name for g in ctx.groups) == ["eng", "staff"]
    assert (await s.group(eng["id"]))["member_entity_ids"] == [user.id]
    # the same group name on another mount means nothing
    other = await s.entity_for_login(ACC, "kubernetes", EntityAlias("uid-x", {}), ["eng"])
    assert await s.identity_policies(other.id) == []
    # dropped from the claim: dropped from the group
    await s.entity_for_login(JWT, "jwt", EntityAlias("user_1"), [])
    assert await s.identity_policies(user.id) == []
    assert (await s.group(eng["id"]))["member_entity_ids"] == []


async def test_policy_cache_follows_changes(store) -> None:  # noqa: ANN001
    s, _ = store
    user = await s.entity_for_login(ACC, "kubernetes", EntityAlias("uid-2", {}), [])
    group, _ = await s.write_group(name="ops", values={"policies": ["ops"], "member_entity_ids": [user.id]})
    assert await s.identity_policies(user.id) == ["ops"]
    await s.write_group(group_id=group["id"], values={"policies": ["ops", "oncall"]})
    assert await s.identity_policies(user.id) == ["oncall", "ops"]
    await s.delete_group(group["id"])
    assert await s.identity_policies(user.id) == []
    await s.write_entity(entity_id=user.id, values={"disabled": True})
    assert await s.identity_policies(user.id) == []
    assert await s.template_context(user.id) is None
    with pytest.raises(PermissionDenied):
        await s.entity_for_login(ACC, "kubernetes", EntityAlias("uid-2", {}), [])


async def test_names_with_slashes_and_dots_are_safe_keys(store) -> None:  # noqa: ANN001
    s, _ = store
    for name in ("default/s-emoji", "..", "../../sys/token/x", "ünïcode", "*"):
        e = await s.entity_for_login(ACC, "kubernetes", EntityAlias(name, {}), [])
        assert (await s.entity_by_alias(ACC, name))["id"] == e.id
    assert await s.entity("../x") is None and await s.group("..") is None
