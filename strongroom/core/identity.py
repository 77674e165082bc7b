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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.core.logical import EntityAlias, InvalidRequest, PermissionDenied

if TYPE_CHECKING:
    from strongroom.core.acl import IdentityContext
    from strongroom.core.barrier import BarrierView

_CACHE_MAX = 20000


def _hex(name: str) -> str:
    return name.encode().hex() or "-"


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


@dataclass(slots=True)
class Entity:
    id: str
    name: str
    policies: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    disabled: bool = False

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Entity:
        return cls(rec["id"], rec["name"], list(rec.get("policies") or []), dict(rec.get("metadata") or {}),
                   bool(rec.get("disabled")))


def group_ids_of(rec: dict[str, Any]) -> list[str]:
    """Groups an entity is directly in: internal ones by membership, external ones by its logins."""
    ids = list(rec.get("direct_group_ids") or [])
    for gids in (rec.get("external_group_ids") or {}).values():
        ids.extend(g for g in gids if g not in ids)
    return ids


class IdentityStore:
    def __init__(self, view: BarrierView) -> None:
        self.view = view
        self._write = asyncio.Lock()
        self._policies: dict[str, list[str]] = {}
        self._contexts: dict[str, Any] = {}

    async def load(self) -> None:
        """Nothing to preload: every lookup is an index read."""

    async def stop(self) -> None:
        self._invalidate()

    def _invalidate(self, entity_id: str | None = None) -> None:
        """Forget cached results: of one entity (its own record changed), or all (groups changed)."""
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
        eid = await self.view.get_json(f"idx/entity-name/{_hex(name)}")
        return await self.entity(eid) if eid else None

    async def entity_by_alias(self, mount_accessor: str, alias_name: str) -> dict[str, Any] | None:
        eid = await self.view.get_json(f"idx/alias/{_hex(mount_accessor)}/{_hex(alias_name)}")
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
        gid = await self.view.get_json(f"idx/group-name/{_hex(name)}")
        return await self.group(gid) if gid else None

    async def group_by_alias(self, mount_accessor: str, alias_name: str) -> dict[str, Any] | None:
        gid = await self.view.get_json(f"idx/group-alias/{_hex(mount_accessor)}/{_hex(alias_name)}")
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
                rec = self._new_entity_record("", stamp)
                puts[f"idx/entity-name/{_hex(rec['name'])}"] = rec["id"]
                new_alias = self._new_alias(rec["id"], mount_accessor, mount_type, mount_path, alias.name, stamp)
                rec["aliases"].append(new_alias)
                puts[f"idx/alias/{_hex(mount_accessor)}/{_hex(alias.name)}"] = rec["id"]
                puts[f"idx/alias-id/{new_alias['id']}"] = rec["id"]
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

    # --- administration (the identity/ API) -----------------------------------------------------------------------

    @staticmethod
    def _new_entity_record(name: str, stamp: str) -> dict[str, Any]:
        eid = crypto.new_uuid()
        return {
            "id": eid, "name": name or f"entity_{eid[:8]}", "metadata": {}, "policies": [], "disabled": False,
            "creation_time": stamp, "last_update_time": stamp, "aliases": [], "direct_group_ids": [],
            "external_group_ids": {},
        }

    @staticmethod
    def _new_alias(entity_id: str, accessor: str, mount_type: str, mount_path: str, name: str,
                   stamp: str) -> dict[str, Any]:
        return {
            "id": crypto.new_uuid(), "canonical_id": entity_id, "mount_accessor": accessor, "mount_type": mount_type,
            "mount_path": mount_path, "name": name, "metadata": {}, "custom_metadata": {}, "creation_time": stamp,
            "last_update_time": stamp, "local": False, "merged_from_canonical_ids": None,
        }

    async def write_entity(self, *, entity_id: str = "", name: str = "", values: dict[str, Any],
                           by_name: bool = False) -> tuple[dict[str, Any], bool]:
        """Create or update an entity. ``values`` holds only the fields the caller sent. Returns (record, created)."""
        async with self._write:
            rec: dict[str, Any] | None = None
            if entity_id:
                rec = await self.entity(entity_id)
                if rec is None:
                    raise InvalidRequest("entity not found from id")
            if name:
                by = await self.entity_by_name(name)
                if by is not None:
                    if rec is None:
                        rec = by
                    elif by["id"] != rec["id"]:
                        raise InvalidRequest("entity name is already in use")
            created = rec is None
            stamp = now_rfc3339()
            puts: dict[str, Any] = {}
            if rec is None:
                rec = self._new_entity_record(name, stamp)
                puts[f"idx/entity-name/{_hex(rec['name'])}"] = rec["id"]
            elif name and name != rec["name"] and not by_name:
                puts[f"idx/entity-name/{_hex(rec['name'])}"] = None
                rec["name"] = name
                puts[f"idx/entity-name/{_hex(name)}"] = rec["id"]
            for key in ("metadata", "policies", "disabled"):
                if key in values:
                    rec[key] = values[key]
            rec["last_update_time"] = stamp
            puts[f"entity/{rec['id']}"] = rec
            await self.view.transaction(puts)
            self._invalidate()
            return rec, created

    async def delete_entity(self, entity_id: str) -> None:
        async with self._write:
            rec = await self.entity(entity_id)
            if rec is None:
                return
            puts: dict[str, Any] = {f"entity/{entity_id}": None, f"idx/entity-name/{_hex(rec['name'])}": None}
            for alias in rec.get("aliases", []):
                puts[f"idx/alias/{_hex(alias['mount_accessor'])}/{_hex(alias['name'])}"] = None
                puts[f"idx/alias-id/{alias['id']}"] = None
            for gid in group_ids_of(rec):
                group = await self.group(gid)
                if group is not None and entity_id in group.get("member_entity_ids", []):
                    group["member_entity_ids"].remove(entity_id)
                    puts[f"group/{gid}"] = group
            await self.view.transaction(puts)
            self._invalidate()

    async def write_entity_alias(self, *, alias_id: str, name: str | None, canonical_id: str | None,
                                 mount_accessor: str | None, mount_type: str, mount_path: str,
                                 custom_metadata: dict[str, str] | None) -> tuple[dict[str, Any], bool]:
        async with self._write:
            stamp = now_rfc3339()
            puts: dict[str, Any] = {}
            old_owner: dict[str, Any] | None = None
            if alias_id:
                old_owner = await self.entity_by_alias_id(alias_id)
                if old_owner is None:
                    raise InvalidRequest("invalid alias ID provided")
                alias = next(a for a in old_owner["aliases"] if a["id"] == alias_id)
                puts[f"idx/alias/{_hex(alias['mount_accessor'])}/{_hex(alias['name'])}"] = None
                old_owner["aliases"] = [a for a in old_owner["aliases"] if a["id"] != alias_id]
            else:
                if not name:
                    raise InvalidRequest("missing alias name")
                if not mount_accessor:
                    raise InvalidRequest("missing mount_accessor")
                alias = self._new_alias("", mount_accessor, mount_type, mount_path, name, stamp)
            if name:
                alias["name"] = name
            if mount_accessor:
                alias.update(mount_accessor=mount_accessor, mount_type=mount_type, mount_path=mount_path)
            if custom_metadata is not None:
                alias["custom_metadata"] = dict(custom_metadata)
            target_id = canonical_id or (old_owner["id"] if old_owner else "")
            if not target_id:
                raise InvalidRequest("missing entity id")
            same = old_owner is not None and old_owner["id"] == target_id
            owner = old_owner if same else await self.entity(target_id)
            if owner is None:
                raise InvalidRequest("invalid canonical ID provided")
            clash = await self.entity_by_alias(alias["mount_accessor"], alias["name"])
            if clash is not None and any(a["mount_accessor"] == alias["mount_accessor"] and a["name"] == alias["name"]
                                         and a["id"] != alias["id"] for a in clash["aliases"]):
                raise InvalidRequest("combination of mount and alias name is already in use")
            # one alias per mount per entity, so templates always see exactly one (GHSA-pfmw-vj74-ph8g)
            if any(a["mount_accessor"] == alias["mount_accessor"] and a["id"] != alias["id"] for a in owner["aliases"]):
                raise InvalidRequest(
                    f"mount accessor {alias['mount_accessor']!r} already has an alias on entity {owner['id']!r}")
            alias["canonical_id"] = owner["id"]
            alias["last_update_time"] = stamp
            owner["aliases"].append(alias)
            owner["last_update_time"] = stamp
            if old_owner is not None and old_owner["id"] != owner["id"]:
                puts[f"entity/{old_owner['id']}"] = old_owner
            puts[f"entity/{owner['id']}"] = owner
            puts[f"idx/alias/{_hex(alias['mount_accessor'])}/{_hex(alias['name'])}"] = owner["id"]
            puts[f"idx/alias-id/{alias['id']}"] = owner["id"]
            await self.view.transaction(puts)
            self._invalidate()
            return alias, not alias_id

    async def delete_entity_alias(self, alias_id: str) -> None:
        async with self._write:
            owner = await self.entity_by_alias_id(alias_id)
            if owner is None:
                return
            alias = next(a for a in owner["aliases"] if a["id"] == alias_id)
            owner["aliases"] = [a for a in owner["aliases"] if a["id"] != alias_id]
            owner.get("external_group_ids", {}).pop(alias["mount_accessor"], None)
            await self.view.transaction({
                f"entity/{owner['id']}": owner,
                f"idx/alias/{_hex(alias['mount_accessor'])}/{_hex(alias['name'])}": None,
                f"idx/alias-id/{alias_id}": None,
            })
            self._invalidate()

    async def alias_ids(self) -> list[tuple[str, str]]:
        """(alias id, entity id) for every entity alias (admin listing)."""
        return [(k, await self.view.get_json(f"idx/alias-id/{k}")) for k in await self.view.list_all("idx/alias-id/")]

    async def write_group(self, *, group_id: str = "", name: str = "", values: dict[str, Any],
                          by_name: bool = False) -> tuple[dict[str, Any], bool]:
        async with self._write:
            rec: dict[str, Any] | None = None
            if group_id:
                rec = await self.group(group_id)
                if rec is None:
                    raise InvalidRequest("group not found from id")
            if name:
                by = await self.group_by_name(name)
                if by is not None:
                    if rec is None:
                        rec = by
                    elif by["id"] != rec["id"]:
                        raise InvalidRequest("group name is already in use")
            created = rec is None
            stamp = now_rfc3339()
            puts: dict[str, Any] = {}
            if rec is None:
                gid = crypto.new_uuid()
                rec = {"id": gid, "name": name or f"group_{gid[:8]}", "type": "internal", "metadata": {},
                       "policies": [], "member_entity_ids": [], "member_group_ids": [], "parent_group_ids": [],
                       "alias": None, "creation_time": stamp, "last_update_time": stamp, "modify_index": 0}
                puts[f"idx/group-name/{_hex(rec['name'])}"] = rec["id"]
            elif name and name != rec["name"] and not by_name:
                puts[f"idx/group-name/{_hex(rec['name'])}"] = None
                rec["name"] = name
                puts[f"idx/group-name/{_hex(name)}"] = rec["id"]
            gtype = values.get("type") or rec["type"]
            if gtype not in ("internal", "external"):
                raise InvalidRequest(f"invalid group type {gtype!r}")
            if not created and gtype != rec["type"]:
                raise InvalidRequest("group type cannot be changed")
            rec["type"] = gtype
            for key in ("metadata", "policies"):
                if key in values:
                    rec[key] = values[key]
            if gtype == "external" and (values.get("member_entity_ids") or values.get("member_group_ids")):
                raise InvalidRequest("member entities can't be set manually for external groups")
            if "member_entity_ids" in values and gtype == "internal":
                await self._set_members(rec, list(dict.fromkeys(values["member_entity_ids"])), puts)
            if "member_group_ids" in values and gtype == "internal":
                await self._set_member_groups(rec, list(dict.fromkeys(values["member_group_ids"])), puts)
            rec["last_update_time"] = stamp
            rec["modify_index"] = int(rec.get("modify_index", 0)) + 1
            puts[f"group/{rec['id']}"] = rec
            await self.view.transaction(puts)
            self._invalidate()
            return rec, created

    async def _set_members(self, rec: dict[str, Any], wanted: list[str], puts: dict[str, Any]) -> None:
        current = set(rec.get("member_entity_ids") or [])
        for eid in wanted:
            if eid not in current and await self.entity(eid) is None:
                raise InvalidRequest(f"invalid entity ID {eid!r}")
        for eid in current ^ set(wanted):
            ent = puts.get(f"entity/{eid}") or await self.entity(eid)
            if ent is None:
                continue
            direct = ent.setdefault("direct_group_ids", [])
            if eid in wanted and rec["id"] not in direct:
                direct.append(rec["id"])
            elif eid not in wanted and rec["id"] in direct:
                direct.remove(rec["id"])
            puts[f"entity/{eid}"] = ent
        rec["member_entity_ids"] = wanted

    async def _set_member_groups(self, rec: dict[str, Any], wanted: list[str], puts: dict[str, Any]) -> None:
        current = set(rec.get("member_group_ids") or [])
        ancestors = {g["id"] for g in await self._groups_with_ancestors([rec["id"]])} | {rec["id"]}
        for gid in wanted:
            if gid in ancestors:
                raise InvalidRequest(f"member group ID {gid!r} would create a cycle")
            if gid not in current and await self.group(gid) is None:
                raise InvalidRequest(f"invalid member group ID {gid!r}")
        for gid in current ^ set(wanted):
            child = puts.get(f"group/{gid}") or await self.group(gid)
            if child is None:
                continue
            parents = child.setdefault("parent_group_ids", [])
            if gid in wanted and rec["id"] not in parents:
                parents.append(rec["id"])
            elif gid not in wanted and rec["id"] in parents:
                parents.remove(rec["id"])
            puts[f"group/{gid}"] = child
        rec["member_group_ids"] = wanted

    async def delete_group(self, group_id: str) -> None:
        async with self._write:
            rec = await self.group(group_id)
            if rec is None:
                return
            puts: dict[str, Any] = {f"group/{group_id}": None, f"idx/group-name/{_hex(rec['name'])}": None}
            if rec.get("alias"):
                alias = rec["alias"]
                puts[f"idx/group-alias/{_hex(alias['mount_accessor'])}/{_hex(alias['name'])}"] = None
                puts[f"idx/group-alias-id/{alias['id']}"] = None
            for eid in rec.get("member_entity_ids") or []:
                ent = await self.entity(eid)
                if ent is None:
                    continue
                if group_id in ent.get("direct_group_ids", []):
                    ent["direct_group_ids"].remove(group_id)
                for acc, gids in list(ent.get("external_group_ids", {}).items()):
                    if group_id in gids:
                        gids.remove(group_id)
                        if not gids:
                            ent["external_group_ids"].pop(acc)
                puts[f"entity/{eid}"] = ent
            for gid in rec.get("member_group_ids") or []:
                child = await self.group(gid)
                if child is not None and group_id in child.get("parent_group_ids", []):
                    child["parent_group_ids"].remove(group_id)
                    puts[f"group/{gid}"] = child
            for gid in rec.get("parent_group_ids") or []:
                parent = await self.group(gid)
                if parent is not None and group_id in parent.get("member_group_ids", []):
                    parent["member_group_ids"].remove(group_id)
                    puts[f"group/{gid}"] = parent
            await self.view.transaction(puts)
            self._invalidate()

    async def write_group_alias(self, *, alias_id: str, name: str | None, mount_accessor: str | None,
                                canonical_id: str | None, mount_type: str,
                                mount_path: str) -> tuple[dict[str, Any], bool]:
        async with self._write:
            stamp = now_rfc3339()
            puts: dict[str, Any] = {}
            old_group: dict[str, Any] | None = None
            if alias_id:
                old_group = await self.group_by_alias_id(alias_id)
                if old_group is None:
                    raise InvalidRequest("invalid group alias ID provided")
                alias = dict(old_group["alias"])
                puts[f"idx/group-alias/{_hex(alias['mount_accessor'])}/{_hex(alias['name'])}"] = None
            else:
                if not name:
                    raise InvalidRequest("missing alias name")
                if not mount_accessor:
                    raise InvalidRequest("missing mount_accessor")
                alias = {"id": crypto.new_uuid(), "canonical_id": "", "mount_accessor": mount_accessor,
                         "mount_type": mount_type, "mount_path": mount_path, "name": name, "metadata": None,
                         "creation_time": stamp, "last_update_time": stamp, "merged_from_canonical_ids": None}
            if name:
                alias["name"] = name
            if mount_accessor:
                alias.update(mount_accessor=mount_accessor, mount_type=mount_type, mount_path=mount_path)
            target_id = canonical_id or (old_group["id"] if old_group else "")
            if not target_id:
                raise InvalidRequest("missing canonical_id")
            group = old_group if old_group is not None and old_group["id"] == target_id else await self.group(target_id)
            if group is None:
                raise InvalidRequest("invalid group ID given in 'canonical_id'")
            if group["type"] != "external":
                raise InvalidRequest("alias can't be set on an internal group")
            if group.get("alias") and group["alias"]["id"] != alias["id"]:
                raise InvalidRequest("group already has an alias")
            clash = await self.group_by_alias(alias["mount_accessor"], alias["name"])
            if clash is not None and clash["alias"]["id"] != alias["id"]:
                raise InvalidRequest("combination of mount and group alias name is already in use")
            alias["canonical_id"] = group["id"]
            alias["last_update_time"] = stamp
            if old_group is not None and old_group["id"] != group["id"]:
                old_group["alias"] = None
                puts[f"group/{old_group['id']}"] = old_group
            group["alias"] = alias
            puts[f"group/{group['id']}"] = group
            puts[f"idx/group-alias/{_hex(alias['mount_accessor'])}/{_hex(alias['name'])}"] = group["id"]
            puts[f"idx/group-alias-id/{alias['id']}"] = group["id"]
            await self.view.transaction(puts)
            self._invalidate()
            return alias, not alias_id

    async def delete_group_alias(self, alias_id: str) -> None:
        async with self._write:
            group = await self.group_by_alias_id(alias_id)
            if group is None:
                return
            alias = group["alias"]
            group["alias"] = None
            await self.view.transaction({
                f"group/{group['id']}": group,
                f"idx/group-alias/{_hex(alias['mount_accessor'])}/{_hex(alias['name'])}": None,
                f"idx/group-alias-id/{alias_id}": None,
            })
            self._invalidate()

    async def group_alias_ids(self) -> list[str]:
        return await self.view.list_all("idx/group-alias-id/")
