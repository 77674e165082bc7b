"""auth/<mount>/role/<name>: which ServiceAccounts (names and namespaces, globs allowed) get which token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.auth.role_paths import role_paths
from strongroom.auth.token_fields import TOKEN_FIELDS, TokenParams
from strongroom.core.logical import InvalidRequest, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.auth.kubernetes.backend import KubernetesBackend

ALIAS_SOURCES = ("serviceaccount_uid", "serviceaccount_name")

FIELDS = {
    "name": Field(FieldType.STRING, "Name of the role.", in_path=True),
    "bound_service_account_names": Field(FieldType.COMMA_STRING_LIST, "ServiceAccount names allowed to log in "
                                                                      "('*' for all; globs allowed)."),
    "bound_service_account_namespaces": Field(FieldType.COMMA_STRING_LIST, "Namespaces allowed to log in "
                                                                           "('*' for all; globs allowed)."),
    "bound_service_account_namespace_selector": Field(FieldType.STRING, "Not supported; must be empty."),
    "audience": Field(FieldType.STRING, "The audience the JWT's aud claim must contain."),
    "alias_name_source": Field(FieldType.STRING, "Entity alias name: 'serviceaccount_uid' (default) or "
                                                 "'serviceaccount_name' (<namespace>/<name>).", allowed=ALIAS_SOURCES),
    **TOKEN_FIELDS,
}


def role_json(role: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "bound_service_account_names": role["bound_service_account_names"],
        "bound_service_account_namespaces": role["bound_service_account_namespaces"],
        "bound_service_account_namespace_selector": "",
        "alias_name_source": role.get("alias_name_source", "serviceaccount_uid"),
        **TokenParams.from_dict(role.get("token")).response_data(),
    }
    if role.get("audience"):
        data["audience"] = role["audience"]
    return data


def _bound_list(fd: FieldData, name: str, current: list[str] | None) -> list[str]:
    values = fd.get(name) if fd.has(name) else (current or [])
    if len(values) > 1 and "*" in values:
        raise InvalidRequest(f'can not mix "*" with values in "{name}"')
    return values


def paths(b: KubernetesBackend) -> list[Path]:
    storage = b.ctx.storage

    async def write(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        old = await storage.get_json(f"role/{name}") or {}
        if fd.get("bound_service_account_namespace_selector"):
            raise InvalidRequest("bound_service_account_namespace_selector is not supported by this server")
        names = _bound_list(fd, "bound_service_account_names", old.get("bound_service_account_names"))
        namespaces = _bound_list(fd, "bound_service_account_namespaces", old.get("bound_service_account_namespaces"))
        if not names:
            raise InvalidRequest('"bound_service_account_names" can not be empty')
        if not namespaces:
            raise InvalidRequest('"bound_service_account_namespaces" can not be empty')
        token = TokenParams.from_dict(old.get("token"))
        token.update(fd)
        audience = fd.get("audience") if fd.has("audience") else old.get("audience", "")
        source = fd.get("alias_name_source") or old.get("alias_name_source") or "serviceaccount_uid"
        await storage.put_json(f"role/{name}", {
            "bound_service_account_names": names, "bound_service_account_namespaces": namespaces,
            "audience": audience or "", "alias_name_source": source, "token": token.to_dict(),
        })
        if not audience:
            return Response(warnings=["This role does not have an audience. In Vault v1.21+, specifying an audience "
                                      "on roles will be required."])
        return None

    return role_paths(storage, generic_name("name"), FIELDS, "Manage a role binding ServiceAccounts to token policies.",
                      write=write, role_json=role_json)
