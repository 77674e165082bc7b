"""auth/<mount>/role/<name>: which IdP tokens may log in, who they are, which groups they bring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.auth.role_paths import role_paths
from strongroom.auth.token_fields import TOKEN_FIELDS, TokenParams
from strongroom.core.logical import InvalidRequest, Request
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.durations import parse_duration

if TYPE_CHECKING:
    from strongroom.auth.jwt.backend import JWTBackend

ROLE_NAME = r"(?P<name>\w(([\w.-]+)?\w)?)"
LEEWAYS = {"clock_skew_leeway": 60, "expiration_leeway": 150, "not_before_leeway": 150}

FIELDS = {
    "name": Field(FieldType.STRING, "Name of the role.", in_path=True),
    "role_type": Field(FieldType.STRING, "Type of the role; only 'jwt' is supported.", default="jwt"),
    "bound_audiences": Field(FieldType.COMMA_STRING_LIST, "The aud claim must contain one of these."),
    "user_claim": Field(FieldType.STRING, "The claim that names the user (the entity alias name)."),
    "user_claim_json_pointer": Field(FieldType.BOOL, "Read user_claim as a JSON pointer.", default=False),
    "groups_claim": Field(FieldType.STRING, "The claim listing the user's groups (external group alias names)."),
    "bound_subject": Field(FieldType.STRING, "The sub claim must equal this."),
    "bound_claims": Field(FieldType.MAP, "Claims that must have one of the listed values."),
    "bound_claims_type": Field(FieldType.STRING, "'string' (exact) or 'glob' matching of bound_claims.",
                               default="string", allowed=("string", "glob")),
    "claim_mappings": Field(FieldType.STRING_MAP, "Claims copied into alias and token metadata: claim -> key."),
    "oidc_scopes": Field(FieldType.COMMA_STRING_LIST, "Stored for compatibility."),
    "allowed_redirect_uris": Field(FieldType.COMMA_STRING_LIST, "Stored for compatibility."),
    "verbose_oidc_logging": Field(FieldType.BOOL, "Accepted; claims are never logged.", default=False),
    "max_age": Field(FieldType.DURATION, "Stored for compatibility."),
    **{k: Field(FieldType.ANY, f"Leeway in seconds (default {v}; negative disables).") for k, v in LEEWAYS.items()},
    **TOKEN_FIELDS,
}
_PLAIN = ("role_type", "bound_audiences", "user_claim", "user_claim_json_pointer", "groups_claim", "bound_subject",
          "bound_claims", "bound_claims_type", "claim_mappings", "oidc_scopes", "allowed_redirect_uris",
          "verbose_oidc_logging", "max_age")


def _leeway(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    try:
        return parse_duration(value)
    except ValueError:
        raise InvalidRequest(f"error converting input for field {name!r}: expected duration") from None


def _check(role: dict[str, Any]) -> None:
    if role["role_type"] != "jwt":
        raise InvalidRequest('invalid \'role_type\': only "jwt" roles are supported by this server')
    if not role.get("user_claim"):
        raise InvalidRequest("a user claim must be defined on the role")
    if not (role.get("bound_audiences") or role.get("bound_claims") or role.get("bound_subject")):
        raise InvalidRequest("must have at least one bound constraint when creating/updating a role")
    for claim, value in (role.get("bound_claims") or {}).items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise InvalidRequest(f"bound_claims value for {claim!r} must be a string or a list of strings")
        if role["bound_claims_type"] == "glob" and not all(isinstance(v, str) for v in values):
            raise InvalidRequest(f"bound_claims value for {claim!r} must be strings when bound_claims_type is glob")
    targets: set[str] = set()
    for target in (role.get("claim_mappings") or {}).values():
        if target == "role":
            raise InvalidRequest('metadata key "role" is reserved and may not be a mapping destination')
        if target in targets:
            raise InvalidRequest(f'multiple keys are mapped to metadata key "{target}"')
        targets.add(target)


def role_json(role: dict[str, Any]) -> dict[str, Any]:
    data = {k: role.get(k) for k in _PLAIN}
    data.update({k: role.get(k, v) for k, v in LEEWAYS.items()})
    data.update(TokenParams.from_dict(role.get("token")).response_data())
    return data


def paths(b: JWTBackend) -> list[Path]:
    storage = b.ctx.storage

    async def write(req: Request, fd: FieldData) -> None:
        name = fd.get("name").lower()
        role: dict[str, Any] = await storage.get_json(f"role/{name}") or {}
        for key in _PLAIN:
            if fd.has(key) or key not in role:
                role[key] = fd.get(key)
        role["role_type"] = (role.get("role_type") or "jwt").lower()
        for key, default in LEEWAYS.items():
            if fd.has(key):
                role[key] = _leeway(key, fd.get(key))
            role.setdefault(key, default)
        token = TokenParams.from_dict(role.get("token"))
        token.update(fd)
        role["token"] = token.to_dict()
        _check(role)
        await storage.put_json(f"role/{name}", role)

    return role_paths(storage, ROLE_NAME, FIELDS,
                      "Manage a role: bound audiences, claims, user and groups claims, token settings.",
                      write=write, role_json=role_json, canonical=str.lower)
