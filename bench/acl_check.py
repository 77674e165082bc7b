"""Micro-benchmark: cost of one ACL check (``acl_for`` + ``allow``, as the pipeline does) as the store grows.

Runs the real PolicyStore over an in-memory barrier. A token carries 10 policies, one of them the templated
``kubernetes-reader`` workload policy (its path comes from the caller's ServiceAccount namespace and name). We measure
checks per second for one identity, then for requests spread over 10,000 identities, then again with 10,000 unrelated
policies in the store. The numbers should stay within noise of each other: the cost depends only on the token's own
policies.

    python bench/acl_check.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from strongroom.core.acl import AliasInfo, IdentityContext
from strongroom.core.barrier import Barrier
from strongroom.core.logical import Operation
from strongroom.core.policy_store import PolicyStore
from strongroom.crypto import new_key
from strongroom.storage.memory import InMemoryStorage

K8S = "auth_kubernetes_5f1c2d3e"
IDENTITIES = 10_000
READER = f"""
path "secret/data/k8s/{{{{identity.entity.aliases.{K8S}.metadata.service_account_namespace}}}}/{{{{identity.entity.aliases.{K8S}.metadata.service_account_name}}}}/*" {{
  capabilities = ["read"]
}}
path "secret/metadata/k8s/{{{{identity.entity.aliases.{K8S}.metadata.service_account_namespace}}}}/{{{{identity.entity.aliases.{K8S}.metadata.service_account_name}}}}/*" {{
  capabilities = ["read", "list"]
}}
"""  # noqa: E501


def team_policy(i: int) -> str:
    return (
        f'path "secret/data/team{i}/*" {{ capabilities = ["read", "list"] }}\n'
        f'path "secret/data/team{i}/+/admin" {{ capabilities = ["deny"] }}\n'
        f'path "database/creds/team{i}-*" {{ capabilities = ["read"] }}\n'
        f'path "transit/encrypt/team{i}" {{ capabilities = ["update"] }}\n'
    )


def identity(n: int) -> IdentityContext:
    meta = {"service_account_namespace": f"ns{n % 50}", "service_account_name": f"s-svc{n}"}
    return IdentityContext(entity_id=f"entity-{n}", entity_name=f"s-svc{n}",
                           aliases={K8S: AliasInfo(id=f"alias-{n}", name=f"ns{n % 50}/s-svc{n}", metadata=meta)})


async def measure(store: PolicyStore, policies: tuple[str, ...], entity_ids: list[str], seconds: float) -> float:
    """Best of three timed rounds (the machine may be shared), after warming the caches for every identity."""
    for eid in entity_ids:
        await store.acl_for(policies, eid)
    return max([await _round(store, policies, entity_ids, seconds / 3) for _ in range(3)])


async def _round(store: PolicyStore, policies: tuple[str, ...], entity_ids: list[str], seconds: float) -> float:
    checks, i, n = 0, 0, len(entity_ids)
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(500):
            eid = entity_ids[i % n]
            num = int(eid.rsplit("-", 1)[1])
            own = i % 2 == 0  # alternate a path the identity owns with a neighbour's
            path = f"secret/data/k8s/ns{num % 50}/{f's-svc{num}' if own else 's-other'}/db"
            acl = await store.acl_for(policies, eid)
            assert acl.allow(Operation.READ, path, None, False).allowed is own
            checks += 1
            i += 1
    return checks / (time.perf_counter() - start)


async def main(seconds: float) -> None:
    barrier = Barrier(InMemoryStorage())
    await barrier.initialize(new_key())
    store = PolicyStore(barrier.view("sys/policy/"))
    await store.load()
    people = {f"entity-{n}": identity(n) for n in range(IDENTITIES)}

    async def resolve(entity_id: str) -> IdentityContext | None:
        return people.get(entity_id)

    store.identity_resolver = resolve
    await store.set("kubernetes-reader", READER)
    for i in range(8):
        await store.set(f"team{i}", team_policy(i))
    policies = ("default", "kubernetes-reader", *(f"team{i}" for i in range(8)))
    assert len(policies) == 10

    rows = [("10 policies, 1 identity", await measure(store, policies, ["entity-7"], seconds))]
    everyone = list(people)
    rows.append((f"10 policies, {IDENTITIES:,} identities", await measure(store, policies, everyone, seconds)))
    for i in range(10_000):
        # JSON: the HCL parser costs about a millisecond per stanza, which would only slow the set-up
        await store.set(f"other{i}", json.dumps({"path": {f"secret/data/other{i}/*": {"capabilities": ["read"]}}}))
    rows.append((f"... and {IDENTITIES:,} more policies stored", await measure(store, policies, everyone, seconds)))

    print(f"{'scenario':<45}{'checks/s':>12}")
    for label, rate in rows:
        print(f"{label:<45}{rate:>12,.0f}")
    print(f"slowest / fastest: {min(r for _, r in rows) / max(r for _, r in rows):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    asyncio.run(main(parser.parse_args().seconds))
