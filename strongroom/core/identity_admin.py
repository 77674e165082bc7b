"""Administration of the identity store: what the ``identity/`` API does (entities, aliases, groups, group aliases).

Every change is one storage transaction under the store's write lock, keeps the indexes described in
:mod:`strongroom.core.identity` in step, and drops cached per-entity results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom import crypto
from strongroom.core.identity_records import group_ids_of, key_name, new_alias, new_entity_record, now_rfc3339
from strongroom.core.logical import InvalidRequest

if TYPE_CHECKING:
    from strongroom.core.barrier import BarrierView
    from strongroom.core.request_txn import TxnLock


class IdentityAdmin:
    """Mixed into :class:`strongroom.core.identity.IdentityStore`, which provides the lookups used here."""

    view: BarrierView
    _write: TxnLock

    if TYPE_CHECKING:
        def _invalidate(self, entity_id: str | None = None) -> None: ...
        async def entity(self, entity_id: str) -> dict[str, Any] | None: ...
        async def entity_by_name(self, name: str) -> dict[str, Any] | None: ...
        async def entity_by_alias(self, mount_accessor: str, alias_name: str) -> dict[str, Any] | None: ...
        async def entity_by_alias_id(self, alias_id: str) -> dict[str, Any] | None: ...
        async def group(self, group_id: str) -> dict[str, Any] | None: ...
        async def group_by_name(self, name: str) -> dict[str, Any] | None: ...
        async def group_by_alias(self, mount_accessor: str, alias_name: str) -> dict[str, Any] | None: ...
        async def group_by_alias_id(self, alias_id: str) -> dict[str, Any] | None: ...
        async def _groups_with_ancestors(self, group_ids: list[str]) -> list[dict[str, Any]]: ...

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
                rec = new_entity_record(name, stamp)
                puts[f"idx/entity-name/{key_name(rec['name'])}"] = rec["id"]
            elif name and name != rec["name"] and not by_name:
                puts[f"idx/entity-name/{key_name(rec['name'])}"] = None
                rec["name"] = name
                puts[f"idx/entity-name/{key_name(name)}"] = rec["id"]
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
            puts: dict[str, Any] = {f"entity/{entity_id}": None, f"idx/entity-name/{key_name(rec['name'])}": None}
            for alias in rec.get("aliases", []):
                puts[f"idx/alias/{key_name(alias['mount_accessor'])}/{key_name(alias['name'])}"] = None
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
                puts[f"idx/alias/{key_name(alias['mount_accessor'])}/{key_name(alias['name'])}"] = None
                old_owner["aliases"] = [a for a in old_owner["aliases"] if a["id"] != alias_id]
            else:
                if not name:
                    raise InvalidRequest("missing alias name")
                if not mount_accessor:
                    raise InvalidRequest("missing mount_accessor")
                alias = new_alias("", mount_accessor, mount_type, mount_path, name, stamp)
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
            puts[f"idx/alias/{key_name(alias['mount_accessor'])}/{key_name(alias['name'])}"] = owner["id"]
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
                f"idx/alias/{key_name(alias['mount_accessor'])}/{key_name(alias['name'])}": None,
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
                puts[f"idx/group-name/{key_name(rec['name'])}"] = rec["id"]
            elif name and name != rec["name"] and not by_name:
                puts[f"idx/group-name/{key_name(rec['name'])}"] = None
                rec["name"] = name
                puts[f"idx/group-name/{key_name(name)}"] = rec["id"]
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
            puts: dict[str, Any] = {f"group/{group_id}": None, f"idx/group-name/{key_name(rec['name'])}": None}
            if rec.get("alias"):
                alias = rec["alias"]
                puts[f"idx/group-alias/{key_name(alias['mount_accessor'])}/{key_name(alias['name'])}"] = None
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
                puts[f"idx/group-alias/{key_name(alias['mount_accessor'])}/{key_name(alias['name'])}"] = None
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
            puts[f"idx/group-alias/{key_name(alias['mount_accessor'])}/{key_name(alias['name'])}"] = group["id"]
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
                f"idx/group-alias/{key_name(alias['mount_accessor'])}/{key_name(alias['name'])}": None,
                f"idx/group-alias-id/{alias_id}": None,
            })
            self._invalidate()

    async def group_alias_ids(self) -> list[str]:
        return await self.view.list_all("idx/group-alias-id/")
