"""The identity store: entities (one alias per auth mount), groups with policies, and the indexes logins need.

A login names an alias (``mount accessor`` + ``alias name``); the store finds or creates the entity behind it with one
index read, refreshes the alias metadata the auth method vouched for, and, for external group names the IdP asserted
(a JWT ``groups`` claim), keeps the entity's membership of the identity groups that carry a matching group alias on
that mount. A token's policies are its own plus those of its entity and its entity's groups (and their parents).

How an administrator makes "IdP group eng → eng policies" work::

    POST identity/group        {"name": "eng", "type": "external", "policies": ["eng"]}      → id G
    POST identity/group-alias  {"name": "eng", "mount_accessor": <accessor of auth/jwt>, "canonical_id": G}

Every later login through that jwt mount whose groups claim contains ``eng`` joins the entity to G; a login without
it leaves G. Internal groups (``type=internal``) list ``member_entity_ids`` / ``member_group_ids`` explicitly.

Storage, under the store's own barrier view (names are hex-encoded so any name is a single safe key segment)::

    entity/<id>                                  the entity, its aliases embedded
    group/<id>                                   a group, its (at most one) alias embedded
    idx/entity-name/<hex name>                   -> entity id
    idx/alias/<accessor hex>/<hex name>          -> entity id      (one read per login)
    idx/alias-id/<alias id>                      -> entity id
    idx/group-name/<hex name>                    -> group id
    idx/group-alias/<accessor hex>/<hex name>    -> group id       (one read per groups-claim value)
    idx/group-alias-id/<alias id>                -> group id

Nothing is scanned at load; per-entity results (policies, template context) are cached and dropped on any write.
The administrative writes behind the ``identity/`` API live in :mod:`strongroom.core.identity_admin`, the record
shapes in :mod:`strongroom.core.identity_records`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from strongroom.core import request_txn
from strongroom.core.identity_admin import IdentityAdmin
from strongroom.core.identity_records import (
    Entity,
    group_ids_of,
    key_name,
    new_alias,
    new_entity_record,
    now_rfc3339,
)
from strongroom.core.logical import EntityAlias, InvalidRequest, PermissionDenied
from strongroom.core.request_txn import TxnLock

if TYPE_CHECKING:
    from strongroom.core.acl import IdentityContext
    from strongroom.core.barrier import BarrierView

_CACHE_MAX = 20000


class IdentityStore(IdentityAdmin):
    def __init__(self, view: BarrierView) -> None:
        self.view = view
        # held until the request commits: a second writer must see the first one's entity, not create another
        self._write = TxnLock()
        self._policies: dict[str, list[str]] = {}
        self._contexts: dict[str, Any] = {}

    async def load(self) -> None:
        """Nothing to preload: every lookup is an index read."""

    async def stop(self) -> None:
        self._invalidate()

    def _invalidate(self, entity_id: str | None = None) -> None:
        """Forget cached results: of one entity (its own record changed), or all (groups changed); in a request, also
        when it ends, so results computed from its uncommitted writes do not outlive it."""
        request_txn.invalidate(lambda: self._forget(entity_id))

    def _forget(self, entity_id: str | None) -> None:
        if entity_id is None:
            self._policies.clear()
            self._contexts.clear()
        else:
            self._policies.pop(entity_id, None)
            self._contexts.pop(entity_id, None)

    # --- raw records ----------------------------------------------------------------------------------------------

    async def entity(self, entity_id: str) -> dict[str, Any] | None:
        if not entity_id or "/" in entity_id or entity_id in (".", ".."):
            return None
        return await self.view.get_json(f"entity/{entity_id}")

    async def entity_by_name(self, name: str) -> dict[str, Any] | None:
        eid = await self.view.get_json(f"idx/entity-name/{key_name(name)}")
        return await self.entity(eid) if eid else None

    async def entity_by_alias(self, mount_accessor: str, alias_name: str) -> dict[str, Any] | None:
        eid = await self.view.get_json(f"idx/alias/{key_name(mount_accessor)}/{key_name(alias_name)}")
        return await self.entity(eid) if eid else None

    async def entity_by_alias_id(self, alias_id: str) -> dict[str, Any] | None:
        if not alias_id or "/" in alias_id or alias_id in (".", ".."):
            return None
        eid = await self.view.get_json(f"idx/alias-id/{alias_id}")
        return await self.entity(eid) if eid else None

    async def group(self, group_id: str) -> dict[str, Any] | None:
        if not group_id or "/" in group_id or group_id in (".", ".."):
            return None
        return await self.view.get_json(f"group/{group_id}")

    async def group_by_name(self, name: str) -> dict[str, Any] | None:
        gid = await self.view.get_json(f"idx/group-name/{key_name(name)}")
        return await self.group(gid) if gid else None

    async def group_by_alias(self, mount_accessor: str, alias_name: str) -> dict[str, Any] | None:
        gid = await self.view.get_json(f"idx/group-alias/{key_name(mount_accessor)}/{key_name(alias_name)}")
        return await self.group(gid) if gid else None

    async def group_by_alias_id(self, alias_id: str) -> dict[str, Any] | None:
        if not alias_id or "/" in alias_id or alias_id in (".", ".."):
            return None
        gid = await self.view.get_json(f"idx/group-alias-id/{alias_id}")
        return await self.group(gid) if gid else None

    async def list_ids(self, kind: str, after: str = "", limit: int = 0) -> list[str]:
        """Ids of ``entity`` or ``group`` records, a page at a time (admin listing only)."""
        if limit:
            return await self.view.list(f"{kind}/", after, limit)
        return await self.view.list_all(f"{kind}/")

    # --- login ----------------------------------------------------------------------------------------------------

    async def entity_for_login(self, mount_accessor: str, mount_type: str, alias: EntityAlias,
                               group_aliases: list[str], mount_path: str = "") -> Entity:
        if not alias.name:
            raise InvalidRequest("missing alias name")
        group_ids = await self._external_groups(mount_accessor, group_aliases)
        rec = await self.entity_by_alias(mount_accessor, alias.name)
        if rec is not None and not self._login_changes(rec, mount_accessor, alias, group_ids):
            if rec.get("disabled"):
                raise PermissionDenied()
            return Entity.from_record(rec)
        async with self._write:
            rec = await self.entity_by_alias(mount_accessor, alias.name)
            puts: dict[str, Any] = {}
            stamp = now_rfc3339()
            if rec is None:
                rec = new_entity_record("", stamp)
                puts[f"idx/entity-name/{key_name(rec['name'])}"] = rec["id"]
                created = new_alias(rec["id"], mount_accessor, mount_type, mount_path, alias.name, stamp)
                rec["aliases"].append(created)
                puts[f"idx/alias/{key_name(mount_accessor)}/{key_name(alias.name)}"] = rec["id"]
                puts[f"idx/alias-id/{created['id']}"] = rec["id"]
            if rec.get("disabled"):
                raise PermissionDenied()
            entry = next(a for a in rec["aliases"] if a["mount_accessor"] == mount_accessor and a["name"] == alias.name)
            if entry.get("metadata") != dict(alias.metadata) or (
                    alias.custom_metadata and entry.get("custom_metadata") != dict(alias.custom_metadata)):
                entry["metadata"] = dict(alias.metadata)
                if alias.custom_metadata:
                    entry["custom_metadata"] = dict(alias.custom_metadata)
                entry["last_update_time"] = stamp
            entry["mount_type"] = mount_type or entry.get("mount_type", "")
            if mount_path:
                entry["mount_path"] = mount_path
            await self._set_external_groups(rec, mount_accessor, group_ids, puts)
            rec["last_update_time"] = stamp
            puts[f"entity/{rec['id']}"] = rec
            await self.view.transaction(puts)
            # group member lists changed at most; only this entity's own results depend on what changed
            self._invalidate(rec["id"])
            return Entity.from_record(rec)

    @staticmethod
    def _login_changes(rec: dict[str, Any], accessor: str, alias: EntityAlias, group_ids: list[str]) -> bool:
        entry = next((a for a in rec.get("aliases", []) if a["mount_accessor"] == accessor
                      and a["name"] == alias.name), None)
        if entry is None or entry.get("metadata") != dict(alias.metadata):
            return True
        if alias.custom_metadata and entry.get("custom_metadata") != dict(alias.custom_metadata):
            return True
        current = (rec.get("external_group_ids") or {}).get(accessor, [])
        return sorted(current) != sorted(group_ids)

    async def _external_groups(self, accessor: str, names: Iterable[str]) -> list[str]:
        ids: list[str] = []
        for name in dict.fromkeys(n for n in names if n):
            group = await self.group_by_alias(accessor, name)
            if group is not None and group.get("type") == "external" and group["id"] not in ids:
                ids.append(group["id"])
        return ids

    async def _set_external_groups(self, rec: dict[str, Any], accessor: str, group_ids: list[str],
                                   puts: dict[str, Any]) -> None:
        ext = rec.setdefault("external_group_ids", {})
        current = set(ext.get(accessor, []))
        wanted = set(group_ids)
        for gid in current ^ wanted:
            group = puts.get(f"group/{gid}") or await self.group(gid)
            if group is None:
                continue
            members = group.setdefault("member_entity_ids", [])
            if gid in wanted and rec["id"] not in members:
                members.append(rec["id"])
            elif gid not in wanted and rec["id"] in members:
                members.remove(rec["id"])
            group["last_update_time"] = now_rfc3339()
            group["modify_index"] = int(group.get("modify_index", 0)) + 1
            puts[f"group/{gid}"] = group
        if wanted:
            ext[accessor] = sorted(wanted)
        else:
            ext.pop(accessor, None)

    # --- what a request needs -------------------------------------------------------------------------------------

    async def identity_policies(self, entity_id: str) -> list[str]:
        cached = self._policies.get(entity_id)
        if cached is not None:
            return list(cached)
        rec = await self.entity(entity_id)
        policies: list[str] = []
        if rec is not None and not rec.get("disabled"):
            policies.extend(rec.get("policies") or [])
            for group in await self._groups_with_ancestors(group_ids_of(rec)):
                policies.extend(group.get("policies") or [])
        # identity never grants root, whatever was stored (see CVE-2025-5999)
        result = sorted({p.strip().lower() for p in policies} - {"root", ""})
        self._remember(self._policies, entity_id, result)
        return list(result)

    async def entity_enabled(self, entity_id: str) -> bool:
        """False when the entity exists and is disabled: its tokens must not be usable (Vault's rule)."""
        rec = await self.entity(entity_id) if entity_id else None
        return rec is None or not rec.get("disabled")

    async def template_context(self, entity_id: str) -> IdentityContext | None:
        """What ``{{identity.…}}`` in a policy path may refer to; None when the token has no (enabled) entity."""
        from strongroom.core.acl import AliasInfo, GroupInfo, IdentityContext

        if not entity_id:
            return None
        if entity_id in self._contexts:
            return self._contexts[entity_id]
        rec = await self.entity(entity_id)
        ctx: IdentityContext | None = None
        if rec is not None and not rec.get("disabled"):
            aliases = {
                a["mount_accessor"]: AliasInfo(id=a["id"], name=a["name"], metadata=dict(a.get("metadata") or {}),
                                               custom_metadata=dict(a.get("custom_metadata") or {}))
                for a in rec.get("aliases", [])
            }
            groups = [GroupInfo(id=g["id"], name=g["name"], metadata=dict(g.get("metadata") or {}))
                      for g in await self._groups_with_ancestors(group_ids_of(rec))]
            ctx = IdentityContext(entity_id=rec["id"], entity_name=rec["name"],
                                  entity_metadata=dict(rec.get("metadata") or {}), aliases=aliases, groups=groups)
        self._remember(self._contexts, entity_id, ctx)
        return ctx

    async def _groups_with_ancestors(self, group_ids: Iterable[str]) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        queue = list(group_ids)
        while queue:
            gid = queue.pop()
            if gid in seen:
                continue
            group = await self.group(gid)
            if group is None:
                continue
            seen[gid] = group
            queue.extend(group.get("parent_group_ids") or [])
        return list(seen.values())

    @staticmethod
    def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = value

    async def inherited_group_ids(self, direct: list[str]) -> list[str]:
        return sorted(g["id"] for g in await self._groups_with_ancestors(direct) if g["id"] not in direct)


__all__ = ["Entity", "IdentityStore", "group_ids_of", "now_rfc3339"]
