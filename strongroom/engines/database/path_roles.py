"""``roles/<name>``: which connection, which statements, how long. Reading a ``k8s_`` name with no stored role shows
the dynamic role it resolves to; writing it stores a real role, which from then on wins over the dynamic one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, NotFound, Request, Response
from strongroom.engines.database.entries import Role, get_role, parse_statements, put_role
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import collection_paths

if TYPE_CHECKING:
    from strongroom.engines.database.backend import DatabaseBackend

_STATEMENTS = ("creation_statements", "revocation_statements", "rollback_statements", "renew_statements")

FIELDS: dict[str, Field] = {
    "name": Field(FieldType.STRING, "Name of the role", required=True, in_path=True),
    "db_name": Field(FieldType.STRING, "Name of the connection (config/<db_name>) this role uses"),
    "creation_statements": Field(
        FieldType.ANY,
        "Statements that create the user ({{username}}, {{password}}, "
        "{{expiration}}; {{keyspace}} for ServiceAccount roles)",
    ),
    "revocation_statements": Field(FieldType.ANY, "Statements that drop the user"),
    "rollback_statements": Field(FieldType.ANY, "Statements that undo a failed creation"),
    "renew_statements": Field(FieldType.ANY, "Statements run when the lease is renewed"),
    "default_ttl": Field(FieldType.DURATION, "Default lease TTL (default one week, capped by the mount)"),
    "max_ttl": Field(FieldType.DURATION, "Maximum lease TTL (default: the mount's)"),
}


def role_view(role: Role) -> dict[str, Any]:
    return {
        "db_name": role.db_name,
        "creation_statements": role.creation_statements,
        "revocation_statements": role.revocation_statements,
        "rollback_statements": role.rollback_statements,
        "renew_statements": role.renew_statements,
        "default_ttl": role.default_ttl,
        "max_ttl": role.max_ttl,
        "credential_type": "password",
    }


def paths(b: DatabaseBackend) -> list[Path]:
    async def exists(req: Request, fd: FieldData) -> bool:
        return await get_role(b.storage(req), fd.get("name")) is not None

    async def write(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        async with b.storage(req).lock(f"role/{name}"):
            old = await get_role(b.storage(req), name)
            db_name = fd.get("db_name") if fd.has("db_name") else (old.db_name if old else "")
            if not db_name:
                raise InvalidRequest("empty database name attribute")
            role = Role(name=name, db_name=db_name)
            for field_name in _STATEMENTS:
                if fd.has(field_name):
                    setattr(role, field_name, parse_statements(fd.get(field_name), field_name))
                elif old is not None:
                    setattr(role, field_name, getattr(old, field_name))
            role.default_ttl = fd.get("default_ttl") if fd.has("default_ttl") else (old.default_ttl if old else 0)
            role.max_ttl = fd.get("max_ttl") if fd.has("max_ttl") else (old.max_ttl if old else 0)
            if role.max_ttl and role.default_ttl > role.max_ttl:
                raise InvalidRequest("ttl cannot be greater than max_ttl")
            await put_role(b.storage(req), role)
        return None

    async def read(req: Request, fd: FieldData) -> Response:
        role = await b.role(req, fd.get("name"))
        if role is None:
            raise NotFound()
        return Response(data=role_view(role))

    async def delete(req: Request, fd: FieldData) -> Response | None:
        await b.storage(req).delete(f"role/{fd.get('name')}")
        return None

    async def list_(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await b.storage(req).list_all("role/"))

    return collection_paths(
        "roles", FIELDS, write=write, read=read, delete=delete, list_=list_, exists=exists,
        summary="Manage the roles that generate database credentials.", list_summary="List the roles.",
    )  # fmt: skip
