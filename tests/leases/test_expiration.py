"""The expiration manager over a real barrier (in-memory storage), with a fake backend and an injectable clock."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from leases.helpers import Clock, FakeBackend, settle, until
from strongroom.core.barrier import Barrier, BarrierView
from strongroom.core.expiration import Backoff, ExpirationManager
from strongroom.core.logical import InvalidRequest, LogicalError, Response, Secret


def creds(ttl: int = 60, max_ttl: int = 0, renewable: bool = True, **internal: object) -> Secret:
    return Secret(lease_type="creds", ttl=ttl, max_ttl=max_ttl, renewable=renewable, internal_data=dict(internal))


async def register(mgr: ExpirationManager, path: str = "database/creds/ro", token: str = "tok1", **kw: object) -> str:
    return await mgr.register(path, path.split("/", 1)[0] + "/", creds(**kw), token)  # type: ignore[arg-type]


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# --- register and lookup ----------------------------------------------------------------------------------------


async def test_register_returns_vault_style_id_and_lookup_reports_times(manager: ExpirationManager, clock: Clock):
    secret = creds(ttl=3600, max_ttl=7200, username="v-user-1")
    lease_id = await manager.register("database/creds/ro", "database/", secret, "tok1")

    assert re.fullmatch(r"database/creds/ro/[0-9A-Za-z]{24}", lease_id)
    assert secret.lease_id == lease_id and secret.ttl == 3600
    info = await manager.lookup(lease_id)
    assert info["id"] == lease_id
    assert info["ttl"] == 3600
    assert info["renewable"] is True
    assert info["last_renewal"] is None
    assert parse_time(info["issue_time"]) == pytest.approx(clock.t)
    assert parse_time(info["expire_time"]) == pytest.approx(clock.t + 3600)


async def test_lease_is_stored_encrypted_behind_the_barrier(manager: ExpirationManager, barrier: Barrier):
    lease_id = await register(manager, username="v-very-recognisable-user")
    raw = barrier.storage._data  # type: ignore[attr-defined]
    keys = [k for k in raw if k.startswith("sys/expire/")]
    assert "sys/expire/id/" + lease_id in keys
    assert all(b"v-very-recognisable-user" not in raw[k] and lease_id.encode() not in raw[k] for k in keys)


async def test_unknown_or_malformed_lease_ids_are_invalid(manager: ExpirationManager):
    for bad in ("database/creds/ro/nope", "../core/keyring", "/abs", "a//b", ""):
        with pytest.raises(InvalidRequest, match="invalid lease"):
            await manager.lookup(bad)


async def test_lookup_list_shows_immediate_children_with_folders_and_pages(manager: ExpirationManager):
    ids = [await register(manager, "database/creds/ro") for _ in range(3)]
    await register(manager, "database/creds/rw")
    await register(manager, "other/creds/x")

    assert await manager.list_prefix("") == ["database/", "other/"]
    assert await manager.list_prefix("database/creds") == ["ro/", "rw/"]
    children = await manager.list_prefix("database/creds/ro/")
    assert sorted(children) == sorted(i.rsplit("/", 1)[1] for i in ids)
    first = await manager.list_prefix("database/creds/ro/", limit=2)
    rest = await manager.list_prefix("database/creds/ro/", after=first[-1])
    assert first + rest == children


# --- expiry -----------------------------------------------------------------------------------------------------


async def test_lease_is_revoked_when_it_expires(manager: ExpirationManager, backend: FakeBackend, clock: Clock):
    lease_id = await register(manager, ttl=60)
    clock.advance(59)
    manager.wake()
    await settle()
    assert backend.revoked == []

    clock.advance(2)
    manager.wake()
    await until(lambda: backend.revoked == [lease_id], what="revocation")
    with pytest.raises(InvalidRequest):
        await manager.lookup(lease_id)


async def test_expiry_on_the_real_clock_without_any_wake(
    make_manager: Callable[..., ExpirationManager], backend: FakeBackend
):
    mgr = make_manager()
    await mgr.load()
    long = await register(mgr, ttl=3600)
    # registered after a far-away lease: the scheduler must be woken for the nearer one, not sleep on
    short = await register(mgr, ttl=1)
    await until(lambda: backend.revoked == [short], within=5, what="1 s lease to be revoked")
    assert await mgr.get(long) is not None


# --- renew ------------------------------------------------------------------------------------------------------


async def test_renew_counts_from_now_and_is_capped_at_max_ttl(
    manager: ExpirationManager, backend: FakeBackend, clock: Clock
):
    lease_id = await register(manager, ttl=100, max_ttl=300)
    clock.advance(50)
    resp = await manager.renew(lease_id, 100)
    assert resp.secret is not None and resp.secret.lease_id == lease_id and resp.secret.ttl == 100
    assert backend.renewals == [(lease_id, 100)]
    info = await manager.lookup(lease_id)
    assert info["ttl"] == 100  # from now, not added to the old expiry (which had 50 s left)
    assert parse_time(info["last_renewal"]) == pytest.approx(clock.t)

    clock.advance(90)  # 140 s after issue: 160 s left of the max TTL
    resp = await manager.renew(lease_id, 1000)
    assert resp.secret is not None and resp.secret.ttl == 160
    assert resp.warnings == [
        'TTL of "16m40s" exceeded the effective max_ttl of "2m40s"; TTL value is capped accordingly'
    ]
    assert (await manager.lookup(lease_id))["ttl"] == 160

    clock.advance(159.5)
    with pytest.raises(InvalidRequest, match="past the max TTL, cannot renew"):
        await manager.renew(lease_id, 10)


async def test_renew_without_increment_uses_original_ttl(manager: ExpirationManager, clock: Clock):
    lease_id = await register(manager, ttl=40, max_ttl=1000)
    clock.advance(30)
    resp = await manager.renew(lease_id, 0)
    assert resp.secret is not None and resp.secret.ttl == 40


async def test_renewed_lease_is_not_revoked_at_its_old_expiry(
    manager: ExpirationManager, backend: FakeBackend, clock: Clock
):
    lease_id = await register(manager, ttl=60, max_ttl=600)
    clock.advance(50)
    await manager.renew(lease_id, 120)
    clock.advance(20)  # past the original expiry
    manager.wake()
    await settle()
    assert backend.revoked == []
    clock.advance(101)
    manager.wake()
    await until(lambda: backend.revoked == [lease_id], what="revocation at the renewed expiry")


async def test_renew_refusals(manager: ExpirationManager, backend: FakeBackend, clock: Clock):
    with pytest.raises(InvalidRequest, match="lease not found"):
        await manager.renew("database/creds/ro/unknown", 10)
    fixed = await register(manager, ttl=60, renewable=False)
    with pytest.raises(InvalidRequest, match="lease is not renewable"):
        await manager.renew(fixed, 10)
    backend.refuse_renew = "role no longer exists"
    other = await register(manager, ttl=60)
    with pytest.raises(LogicalError, match="role no longer exists"):
        await manager.renew(other, 10)
    assert (await manager.lookup(other))["ttl"] == 60  # a refused renewal changes nothing


async def test_backend_may_lower_the_ttl_and_max_ttl_on_renew(
    manager: ExpirationManager, backend: FakeBackend, clock: Clock
):
    lease_id = await register(manager, ttl=60, max_ttl=3600)
    backend.renew_response = Response(secret=Secret(lease_type="creds", ttl=30, max_ttl=90))
    clock.advance(10)
    resp = await manager.renew(lease_id, 0)
    assert resp.secret is not None and resp.secret.ttl == 30
    clock.advance(20)
    resp = await manager.renew(lease_id, 500)
    assert resp.secret is not None and resp.secret.ttl == 60  # capped by the backend's max_ttl of 90 s from issue


# --- revoke -----------------------------------------------------------------------------------------------------


async def test_revoke_sync_and_lazy(manager: ExpirationManager, backend: FakeBackend):
    a = await register(manager)
    b = await register(manager)
    await manager.revoke(a, sync=True)
    assert backend.revoked == [a]
    await manager.revoke(b, sync=False)
    await until(lambda: b in backend.revoked, what="queued revocation")
    await manager.revoke("database/creds/ro/never-existed")  # not an error, as in Vault


async def test_revoke_prefix_revokes_only_that_branch(manager: ExpirationManager, backend: FakeBackend):
    ro = [await register(manager, "database/creds/ro") for _ in range(3)]
    rw = await register(manager, "database/creds/rw")
    rox = await register(manager, "database/creds/rox")

    await manager.revoke_prefix("database/creds/ro", sync=True)
    assert sorted(backend.revoked) == sorted(ro)
    assert await manager.get(rw) is not None and await manager.get(rox) is not None

    await manager.revoke_prefix(rw, sync=True)  # an exact lease id revokes just that lease
    assert backend.revoked[-1] == rw
    await manager.revoke_prefix("database/", sync=False)
    await until(lambda: rox in backend.revoked, what="queued prefix revocation")


async def test_revoke_by_token_revokes_only_that_tokens_leases(
    manager: ExpirationManager, backend: FakeBackend, view: BarrierView
):
    mine = [await register(manager, token="tokA") for _ in range(3)]
    theirs = await register(manager, token="tokB")
    await manager.revoke_by_token("tokA")
    await until(lambda: sorted(backend.revoked) == sorted(mine), what="the token's leases to be revoked")
    assert await manager.get(theirs) is not None
    assert await view.list("token/tokA/") == []
    assert len(await view.list("token/tokB/")) == 1


# --- failures ---------------------------------------------------------------------------------------------------


async def test_failed_revocation_is_retried_with_backoff_until_it_succeeds(
    make_manager: Callable[..., ExpirationManager], backend: FakeBackend
):
    mgr = make_manager(backoff=Backoff(base=0.05, cap=1.0, jitter=0.0, max_attempts=6))
    await mgr.load()
    lease_id = await register(mgr)
    backend.fail_revokes = 2
    await mgr.revoke(lease_id, sync=False)

    await until(lambda: backend.revoked == [lease_id], what="revocation after two failures")
    times = [t for _, t in backend.attempts]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.045  # first retry after ~base
    assert times[2] - times[1] >= 0.095  # then doubling
    assert await mgr.irrevocable() == []


async def test_failure_is_recorded_on_the_lease(make_manager: Callable[..., ExpirationManager], backend: FakeBackend):
    mgr = make_manager(backoff=Backoff(base=30, cap=60, jitter=0.0))
    await mgr.load()
    lease_id = await register(mgr)
    backend.fail_revokes = -1
    with pytest.raises(LogicalError, match="failed to revoke entry database/creds/ro/.*: connection refused") as exc:
        await mgr.revoke(lease_id, sync=True)
    assert exc.value.status == 500
    entry = await mgr.get(lease_id)
    assert entry is not None
    assert entry.revoke_attempts == 1 and entry.last_error == "connection refused by database"
    assert (await mgr.lookup(lease_id))["renewable"] is False  # a lease being revoked cannot be renewed


async def test_persistent_failure_becomes_irrevocable_is_listed_and_still_retried(
    manager: ExpirationManager, backend: FakeBackend, make_manager: Callable[..., ExpirationManager]
):
    mgr = make_manager()  # real clock; backoff 0.02 doubling, cap 0.1, irrevocable after 3 attempts
    await mgr.load()
    lease_id = await register(mgr)
    healthy = await register(mgr)
    backend.fail_revokes = -1
    await mgr.revoke(lease_id, sync=False)

    async def listed() -> bool:
        return [x["lease_id"] for x in await mgr.irrevocable()] == [lease_id]

    await until(listed, what="irrevocable listing")
    (item,) = await mgr.irrevocable()
    assert item["attempts"] >= 3 and item["error"] == "connection refused by database"
    assert item["mount_path"] == "database/"
    attempts = len(backend.attempts)
    await until(lambda: len(backend.attempts) > attempts + 1, what="retries to continue after irrevocable")
    assert await mgr.get(lease_id) is not None  # never dropped
    with pytest.raises(InvalidRequest, match="failed previous revocation attempts"):
        await mgr.renew(lease_id, 10)

    backend.fail_revokes = 0  # the database is back
    await until(lambda: lease_id in backend.revoked, what="eventual revocation")
    assert await mgr.irrevocable() == []
    assert await mgr.get(healthy) is not None


async def test_revoke_force_drops_leases_the_backend_cannot_revoke(manager: ExpirationManager, backend: FakeBackend):
    a = await register(manager, "database/creds/ro")
    b = await register(manager, "database/creds/ro")
    backend.fail_revokes = -1
    with pytest.raises(LogicalError):
        await manager.revoke_prefix("database/creds/ro/", sync=True)
    await manager.revoke_force("database/creds/ro")
    assert await manager.get(a) is None and await manager.get(b) is None
    assert await manager.list_prefix("database/creds/") == []


# --- restart ----------------------------------------------------------------------------------------------------


async def test_restart_revokes_leases_that_expired_during_downtime(
    make_manager: Callable[..., ExpirationManager], backend: FakeBackend, clock: Clock
):
    first = make_manager(clock)
    await first.load()
    short = await register(first, ttl=10)
    long = await register(first, ttl=10_000)
    await first.stop()

    clock.advance(100)  # the server was down while `short` expired
    second = make_manager(clock)
    await second.load()
    await until(lambda: backend.revoked == [short], what="revocation right after start")
    await until(second.restored.is_set, what="restore to finish")
    assert await second.get(long) is not None
    clock.advance(10_000)
    second.wake()
    await until(lambda: backend.revoked == [short, long], what="the long lease at its own expiry")


async def test_irrevocable_state_survives_restart(make_manager: Callable[..., ExpirationManager], backend: FakeBackend):
    first = make_manager()
    await first.load()
    lease_id = await register(first)
    backend.fail_revokes = -1
    await first.revoke(lease_id, sync=False)

    async def listed(m: ExpirationManager) -> bool:
        return len(await m.irrevocable()) == 1

    await until(lambda: listed(first), what="irrevocable")
    await first.stop()
    second = make_manager()
    assert await listed(second)  # listed from storage, even before the restore has run
    backend.fail_revokes = 0
    await second.load()
    await until(lambda: backend.revoked == [lease_id], what="retry after restart")


# --- tokens -----------------------------------------------------------------------------------------------------


async def test_token_expiry_calls_back_and_is_retried_on_failure(
    make_manager: Callable[..., ExpirationManager], clock: Clock, view: BarrierView
):
    expired: list[str] = []
    failures = [1]

    async def on_expired(token_hash: str) -> None:
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("token store busy")
        expired.append(token_hash)

    mgr = make_manager(clock, token_expired_fn=on_expired)
    await mgr.load()
    await mgr.register_token("tokhash1", clock.t + 30)
    await mgr.register_token("tokhash2", clock.t + 3000)
    clock.advance(31)
    mgr.wake()
    await settle()
    assert expired == []  # the first attempt failed; a retry is scheduled with backoff
    clock.advance(1)
    mgr.wake()
    await until(lambda: expired == ["tokhash1"], what="token expiry callback")

    async def forgotten() -> bool:
        return await view.get("token-exp/tokhash1") is None

    await until(forgotten, what="the expired token's schedule entry to go")
    assert await view.get("token-exp/tokhash2") is not None


async def test_token_and_lease_share_one_schedule_and_restore(
    make_manager: Callable[..., ExpirationManager], clock: Clock, backend: FakeBackend
):
    expired: list[str] = []

    async def on_expired(token_hash: str) -> None:
        expired.append(token_hash)

    first = make_manager(clock, token_expired_fn=on_expired)
    await first.load()
    await first.register_token("tok9", clock.t + 50)
    lease_id = await register(first, ttl=40, token="tok9")
    await first.stop()
    clock.advance(60)
    second = make_manager(clock, token_expired_fn=on_expired)
    await second.load()
    await until(lambda: expired == ["tok9"] and backend.revoked == [lease_id], what="both after restart")


# --- scale ------------------------------------------------------------------------------------------------------


async def test_twenty_thousand_leases_schedule_in_log_time(
    make_manager: Callable[..., ExpirationManager], backend: FakeBackend, clock: Clock
):
    mgr = make_manager(clock)
    await mgr.load()
    started = time.perf_counter()
    for i in range(20_000):
        await register(mgr, "database/creds/bulk", ttl=1000 + i)
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"registering 20,000 leases took {elapsed:.1f}s"
    soonest = await register(mgr, "database/creds/bulk", ttl=5)

    clock.advance(6)
    mgr.wake()
    await until(lambda: backend.revoked == [soonest], what="only the earliest lease")
    await settle()
    assert backend.revoked == [soonest]

    # restoring them after a restart happens in the background: load() returns at once
    await mgr.stop()
    again = make_manager(clock)
    started = time.perf_counter()
    await again.load()
    assert time.perf_counter() - started < 0.1
    await until(again.restored.is_set, within=60, what="background restore")
    assert again.scheduled_count == 20_000


async def test_scheduler_cost_does_not_grow_with_the_lease_count(
    make_manager: Callable[..., ExpirationManager], clock: Clock
):
    mgr = make_manager(clock)

    def cost(n: int, tag: str) -> float:
        start = time.perf_counter()
        for i in range(n):
            mgr._schedule(f"l:x/{tag}/{i}", clock.t + 1000 + (i * 7919) % n)
        return (time.perf_counter() - start) / n

    small = min(cost(2_000, f"s{r}") for r in range(3))
    large = cost(100_000, "large")
    assert large < small * 5  # O(log n): a 50x larger heap costs a little more per push, not 50x


# --- tidy -------------------------------------------------------------------------------------------------------


async def test_tidy_removes_dangling_index_entries_and_reschedules(manager: ExpirationManager, view: BarrierView):
    lease_id = await register(manager, token="tokT")
    await view.put("token/tokT/deadbeef", b"database/creds/ro/gone")
    manager._scheduled.clear()  # as if the schedule had lost it
    stats = await manager.tidy()
    assert stats["dangling_index"] == 1 and stats["rescheduled"] == 1
    assert await view.list("token/tokT/") != [] and await view.get("token/tokT/deadbeef") is None
    assert await manager.get(lease_id) is not None


async def test_tidy_revokes_leases_whose_token_is_gone(
    make_manager: Callable[..., ExpirationManager], backend: FakeBackend
):
    async def exists(token_hash: str) -> bool:
        return token_hash == "alive"

    mgr = make_manager(token_exists_fn=exists)
    await mgr.load()
    keep = await register(mgr, token="alive")
    orphan = await register(mgr, token="dead")
    stats = await mgr.tidy()
    assert stats["orphaned_leases"] == 1
    await until(lambda: backend.revoked == [orphan], what="orphaned lease revocation")
    assert await mgr.get(keep) is not None
