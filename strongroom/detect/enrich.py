"""Who an entity is: staff user and IdP groups, or ServiceAccount name, namespace and team, from the identity API.

Detect reads ``identity/entity/id/<id>`` and ``identity/group/id/<id>`` with a token holding the read-only
``detection`` policy (installed by bootstrap). Answers are cached for ``ttl`` seconds, failures for a few seconds,
so an unreachable server delays nothing for long: the alert still goes out, with the entity id alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from strongroom.detect.events import Event

log = logging.getLogger(__name__)
_FAILURE_TTL = 5.0


class Enricher:
    def __init__(self, client: httpx.AsyncClient | None, ttl: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self.lookups = 0

    async def who_for_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        req = alert.get("request") or {}
        ev = Event(kind=str(alert.get("kind", "")), time=0.0, entity_id=str(req.get("entity_id", "")),
                   display_name=str(req.get("display_name", "")), policies=list(alert.get("policies") or []),
                   source=str(alert.get("source", "")))
        return await self.who(ev)

    async def who(self, ev: Event) -> dict[str, Any]:
        base: dict[str, Any] = {"display_name": ev.display_name, "entity_id": ev.entity_id, "policies": ev.policies}
        if ev.kind == "event":
            base["summary"] = ev.display_name or ev.source
            return base
        if not ev.entity_id or self._client is None:
            base["summary"] = ev.display_name or "unknown token"
            return base
        info = await self._entity(ev.entity_id)
        out = {**base, **info}
        out.setdefault("summary", ev.display_name)
        return out

    async def _entity(self, entity_id: str) -> dict[str, Any]:
        now = time.monotonic()
        hit = self._cache.get(entity_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            info = await self._lookup(entity_id)
            ttl = self._ttl
        except (httpx.HTTPError, ValueError, KeyError) as e:
            log.warning("identity lookup for entity %s failed: %s", entity_id, e)
            info, ttl = {}, _FAILURE_TTL
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[entity_id] = (now + ttl, info)
        return info

    async def _get(self, path: str) -> dict[str, Any]:
        assert self._client is not None
        self.lookups += 1
        r = await self._client.get(f"/v1/{path}")
        if r.status_code == 404:
            return {}
        r.raise_for_status()
        return r.json().get("data") or {}

    async def _lookup(self, entity_id: str) -> dict[str, Any]:
        ent = await self._get(f"identity/entity/id/{entity_id}")
        if not ent:
            return {}
        meta = ent.get("metadata") or {}
        groups: list[str] = []
        for gid in (ent.get("group_ids") or []) + (ent.get("inherited_group_ids") or []):
            g = await self._get(f"identity/group/id/{gid}")
            if g.get("name") and g["name"] not in groups:
                groups.append(g["name"])
        out: dict[str, Any] = {"entity": ent.get("name", ""), "groups": groups}
        for alias in ent.get("aliases") or []:
            am = alias.get("metadata") or {}
            if alias.get("mount_type") == "kubernetes" or "service_account_name" in am:
                out["kind"] = "service"
                out["service_account"] = am.get("service_account_name", "")
                out["namespace"] = am.get("service_account_namespace", "")
            elif "kind" not in out:
                out["kind"] = "person"
                out["login"] = alias.get("name", "")
        team = meta.get("team") or (groups[0] if groups else "")
        if team:
            out["team"] = team
        if out.get("kind") == "service":
            out["summary"] = f"service {out['namespace']}/{out['service_account']}"
        else:
            out["summary"] = f"{out.get('login') or out['entity']}" + (f" ({', '.join(groups)})" if groups else "")
        return out
