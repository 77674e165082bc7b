"""auth/<mount>/users/<name>: create, read, update, delete and list users; reset a password; set policies.

Usernames are lower-cased, as Vault does. A read never returns the password or its hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.auth.token_fields import TOKEN_FIELDS, TokenParams
from strongroom.auth.userpass import passwords
from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.auth.userpass.backend import UserpassBackend

USER = generic_name("username")
MAX_USERNAME = 4096
USERNAME_FIELD = Field(FieldType.STRING, "Username of the user.", in_path=True)
PASSWORD_FIELD = Field(FieldType.STRING, "Password for this user.")
FIELDS: dict[str, Field] = {"username": USERNAME_FIELD, "password": PASSWORD_FIELD, **TOKEN_FIELDS}
POLICY_FIELDS = {"username": USERNAME_FIELD, "token_policies": TOKEN_FIELDS["token_policies"],
                 "policies": TOKEN_FIELDS["policies"]}


def user_json(user: dict[str, Any]) -> dict[str, Any]:
    data = TokenParams.from_dict(user.get("token")).response_data()
    for legacy in ("period", "num_uses"):
        data.pop(legacy, None)  # userpass never had these spellings
    return data


def paths(b: UserpassBackend) -> list[Path]:
    storage = b.ctx.storage

    def name_of(fd: FieldData) -> str:
        name = (fd.get("username") or "").lower()
        if len(name) > MAX_USERNAME:
            raise InvalidRequest(f"username is longer than maximum of {MAX_USERNAME} bytes")
        return name

    async def new_hash(fd: FieldData) -> str:
        password = fd.get("password") or ""
        if not password:
            raise InvalidRequest("missing password")
        return await passwords.hash_password(password)

    async def exists(req: Request, fd: FieldData) -> bool:
        return await b.user(name_of(fd)) is not None

    async def write(req: Request, fd: FieldData) -> None:
        name = name_of(fd)
        creating = req.operation is Operation.CREATE
        if creating and not fd.get("password"):
            raise InvalidRequest("missing password")
        async with storage.lock(f"user/{name}"):
            user = await b.user(name) or {"password_hash": ""}
            token = TokenParams.from_dict(user.get("token"))
            token.update(fd)
            user["token"] = token.to_dict()
            if fd.has("password"):
                user["password_hash"] = await new_hash(fd)
            if not user["password_hash"]:
                raise InvalidRequest("missing password")
            await storage.put_json(f"user/{name}", user)

    async def read(req: Request, fd: FieldData) -> Response:
        user = await b.user(name_of(fd))
        if user is None:
            raise NotFound()
        return Response(data=user_json(user))

    async def delete(req: Request, fd: FieldData) -> None:
        await storage.delete(f"user/{name_of(fd)}")

    async def list_users(req: Request, fd: FieldData) -> Response:
        return Response.list_keys(await storage.list_all("user/"))

    async def modify(fd: FieldData, change: Any) -> None:
        name = name_of(fd)
        async with storage.lock(f"user/{name}"):
            user = await b.user(name)
            if user is None:
                raise InvalidRequest("username does not exist")
            await change(user)
            await storage.put_json(f"user/{name}", user)

    async def reset_password(req: Request, fd: FieldData) -> None:
        password_hash = await new_hash(fd)

        async def change(user: dict[str, Any]) -> None:
            user["password_hash"] = password_hash

        await modify(fd, change)

    async def set_policies(req: Request, fd: FieldData) -> None:
        if not fd.has("token_policies") and not fd.has("policies"):
            raise InvalidRequest("missing token_policies")

        async def change(user: dict[str, Any]) -> None:
            token = TokenParams.from_dict(user.get("token"))
            token.update(fd)
            user["token"] = token.to_dict()

        await modify(fd, change)

    return [
        Path(r"users/?", {Operation.LIST: list_users}, {}, summary="List users."),
        Path(rf"users/{USER}", {Operation.CREATE: write, Operation.UPDATE: write, Operation.READ: read,
                                Operation.DELETE: delete}, FIELDS, existence_check=exists,
             summary="Manage users allowed to authenticate."),
        Path(rf"users/{USER}/password", {Operation.UPDATE: reset_password},
             {"username": USERNAME_FIELD, "password": PASSWORD_FIELD}, summary="Reset a user's password."),
        Path(rf"users/{USER}/policies", {Operation.UPDATE: set_policies}, POLICY_FIELDS,
             summary="Update a user's token policies."),
    ]
