"""Vault's standard ``token_*`` role fields (sdk/helper/tokenutil), shared by the kubernetes and jwt auth methods.

A role declares ``**TOKEN_FIELDS`` among its fields, keeps a :class:`TokenParams` in its stored record, and at login
calls :meth:`TokenParams.populate` on the :class:`Auth` it returns. The deprecated names (``policies``, ``ttl``,
``max_ttl``, ``period``, ``num_uses``, ``bound_cidrs``) that hvac's older helpers still send are accepted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

from strongroom.core.logical import Auth, InvalidRequest
from strongroom.framework import Field, FieldData, FieldType

TOKEN_TYPES = ("default", "service", "batch", "default-service", "default-batch")

TOKEN_FIELDS: dict[str, Field] = {
    "token_ttl": Field(FieldType.DURATION, "The initial ttl of the token to generate."),
    "token_max_ttl": Field(FieldType.DURATION, "The maximum lifetime of the generated token."),
    "token_explicit_max_ttl": Field(FieldType.DURATION, "A hard cap on the token's lifetime, even across renewals."),
    "token_period": Field(FieldType.DURATION, "If set, tokens are periodic with this period."),
    "token_policies": Field(FieldType.COMMA_STRING_LIST, "Policies attached to the generated token."),
    "token_bound_cidrs": Field(FieldType.COMMA_STRING_LIST, "CIDR blocks logins (and tokens) are bound to."),
    "token_no_default_policy": Field(FieldType.BOOL, "Do not add the 'default' policy to generated tokens."),
    "token_num_uses": Field(FieldType.INT, "Maximum number of times a generated token may be used (0: unlimited)."),
    "token_type": Field(FieldType.STRING, "The type of token to generate: service, batch or default."),
    # deprecated spellings
    "policies": Field(FieldType.COMMA_STRING_LIST, "Deprecated: use token_policies."),
    "ttl": Field(FieldType.DURATION, "Deprecated: use token_ttl."),
    "max_ttl": Field(FieldType.DURATION, "Deprecated: use token_max_ttl."),
    "period": Field(FieldType.DURATION, "Deprecated: use token_period."),
    "num_uses": Field(FieldType.INT, "Deprecated: use token_num_uses."),
    "bound_cidrs": Field(FieldType.COMMA_STRING_LIST, "Deprecated: use token_bound_cidrs."),
}

_DEPRECATED = {
    "policies": "token_policies", "ttl": "token_ttl", "max_ttl": "token_max_ttl", "period": "token_period",
    "num_uses": "token_num_uses", "bound_cidrs": "token_bound_cidrs",
}


def parse_policies(values: list[str]) -> list[str]:
    """Vault's policyutil.ParsePolicies: trimmed, lower-cased, de-duplicated, sorted."""
    return sorted({p.strip().lower() for p in values if p.strip()})


def parse_cidrs(values: list[str]) -> list[str]:
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise InvalidRequest(f"invalid CIDR {value!r} in token_bound_cidrs") from None
    return out


def remote_addr_allowed(remote_addr: str, cidrs: list[str]) -> bool:
    """True when no CIDRs are bound, or the caller's address is inside one of them."""
    if not cidrs:
        return True
    try:
        addr = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(c, strict=False) for c in cidrs)


@dataclass
class TokenParams:
    token_ttl: int = 0
    token_max_ttl: int = 0
    token_explicit_max_ttl: int = 0
    token_period: int = 0
    token_policies: list[str] = field(default_factory=list)
    token_bound_cidrs: list[str] = field(default_factory=list)
    token_no_default_policy: bool = False
    token_num_uses: int = 0
    token_type: str = "default"  # noqa: S105 - a token kind, not a secret

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> TokenParams:
        raw = raw or {}
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, fd: FieldData) -> None:
        """Apply the token fields the request carried (new names win over deprecated ones)."""
        for old, new in _DEPRECATED.items():
            if fd.has(old) and fd.has(new):
                raise InvalidRequest(f'"{new}" and "{old}" cannot both be given')
        for name in TOKEN_FIELDS:
            if not fd.has(name):
                continue
            target = _DEPRECATED.get(name, name)
            value = fd.get(name)
            if target == "token_policies":
                value = parse_policies(value)
            elif target == "token_bound_cidrs":
                value = parse_cidrs(value)
            elif target == "token_type":
                value = (value or "default").lower()
                if value not in TOKEN_TYPES:
                    raise InvalidRequest(f"invalid 'token_type' value {value!r}")
            elif target == "token_num_uses" and value < 0:
                raise InvalidRequest("'token_num_uses' cannot be negative")
            setattr(self, target, value)
        if self.token_max_ttl and self.token_ttl > self.token_max_ttl:
            raise InvalidRequest("'token_ttl' cannot be greater than 'token_max_ttl'")
        if self.token_type in ("batch", "default-batch") and self.token_period:
            raise InvalidRequest(
                "'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens"
            )
        if self.token_type in ("batch", "default-batch") and self.token_num_uses:
            raise InvalidRequest(
                "'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with num uses"
            )

    def response_data(self) -> dict[str, Any]:
        """The role read shape: every token_* field plus the deprecated aliases Vault still echoes."""
        data: dict[str, Any] = self.to_dict()
        data["token_bound_cidrs"] = list(self.token_bound_cidrs)
        data["policies"] = list(self.token_policies)
        data["ttl"] = self.token_ttl
        data["max_ttl"] = self.token_max_ttl
        data["period"] = self.token_period
        data["num_uses"] = self.token_num_uses
        data["bound_cidrs"] = list(self.token_bound_cidrs)
        return data

    def populate(self, auth: Auth) -> None:
        auth.policies = list(self.token_policies)
        auth.ttl = self.token_ttl
        auth.max_ttl = self.token_max_ttl
        auth.explicit_max_ttl = self.token_explicit_max_ttl
        auth.period = self.token_period
        auth.num_uses = self.token_num_uses
        auth.no_default_policy = self.token_no_default_policy
        auth.token_type = "batch" if self.token_type in ("batch", "default-batch") else "service"
        auth.bound_cidrs = list(self.token_bound_cidrs)

    def renew(self, auth: Auth) -> Auth:
        """The auth of a renewal: the role's current TTLs (Vault re-reads the role on every renew)."""
        auth.ttl = self.token_ttl
        auth.max_ttl = self.token_max_ttl
        auth.period = self.token_period
        return auth
