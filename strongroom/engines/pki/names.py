"""Whether a role allows the names a request asks for: Vault's rules for common names, DNS and email SANs, IP and
URI SANs, including ``allowed_uri_sans_template``/``allowed_domains_template`` filled from the caller's identity.

Templates are filled by the same resolver the ACL uses (:func:`strongroom.core.acl.render_pattern`): a directive that
does not resolve, or whose value is empty or holds ``*``, ``+`` or ``/``, drops that allowed entry — identity data can
come from outside (a ServiceAccount name) and must never widen what a role allows.
"""

from __future__ import annotations

import re
from typing import Any

from strongroom.core.acl import IdentityContext, render_pattern
from strongroom.core.logical import InvalidRequest

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)
_LOCAL = ("localhost", "localdomain")


def glob_match(pattern: str, value: str) -> bool:
    """Vault's glob: ``*`` matches any run of characters (including none), nothing else is special."""
    if "*" not in pattern:
        return pattern == value
    parts = pattern.split("*")
    if not value.startswith(parts[0]) or not value.endswith(parts[-1]):
        return False
    pos = len(parts[0])
    end = len(value) - len(parts[-1])
    for part in parts[1:-1]:
        found = value.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return pos <= end


def render_all(entries: list[str], templated: bool, ident: IdentityContext | None) -> list[str]:
    if not templated:
        return list(entries)
    out = []
    for entry in entries:
        rendered = render_pattern(entry, ident)
        if rendered:
            out.append(rendered)
    return out


def is_hostname(name: str, allow_wildcard: bool) -> bool:
    if allow_wildcard and name.startswith("*."):
        name = name[2:]
    if not name or len(name) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in name.rstrip(".").split("."))


def _name_allowed(name: str, role: dict[str, Any], domains: list[str]) -> bool:
    lower = name.lower()
    if role["allow_localhost"] and (lower in _LOCAL or lower.endswith((".localhost", ".localdomain"))):
        return True
    if role["allow_any_name"]:
        return True
    host = lower.split("@", 1)[1] if "@" in lower else lower
    if role["enforce_hostnames"] and not is_hostname(host, role["allow_wildcard_certificates"]):
        return False
    if host.startswith("*.") and not role["allow_wildcard_certificates"]:
        return False
    for domain in (d.lower() for d in domains):
        if role["allow_bare_domains"] and (host == domain or (domain.startswith("*.") and host == domain)):
            return True
        if role["allow_subdomains"]:
            base = domain[2:] if domain.startswith("*.") else domain
            if host.endswith("." + base):  # a subdomain, or the wildcard over the domain
                return True
        if role["allow_glob_domains"] and "*" in domain and glob_match(domain, host):
            return True
    return False


def check(role: dict[str, Any], common_name: str, dns: list[str], emails: list[str], ips: list[str],
          uris: list[str], ident: IdentityContext | None) -> None:
    """Raise :class:`InvalidRequest` (Vault's wording) for the first name the role does not allow."""
    domains = render_all(role["allowed_domains"], role["allowed_domains_template"], ident)
    validate_cn = "disabled" not in role["cn_validations"]
    if common_name and validate_cn and not _name_allowed(common_name, role, domains):
        raise InvalidRequest(f"common name {common_name} not allowed by this role")
    for name in [*dns, *emails]:
        if not _name_allowed(name, role, domains):
            raise InvalidRequest(f"subject alternate name {name} not allowed by this role")
    if ips and not role["allow_ip_sans"]:
        raise InvalidRequest(f"IP Subject Alternative Names are not allowed in this role, but was provided "
                             f"{', '.join(ips)}")
    if uris:
        allowed = render_all(role["allowed_uri_sans"], role["allowed_uri_sans_template"], ident)
        if not role["allowed_uri_sans"]:
            raise InvalidRequest(f"URI Subject Alternative Names are not allowed in this role, but were provided "
                                 f"{', '.join(uris)}")
        for uri in uris:
            if not any(glob_match(pattern, uri) for pattern in allowed):
                raise InvalidRequest(f"URI Subject Alternative Name {uri} not allowed by this role")


def own_uri(role: dict[str, Any], ident: IdentityContext | None) -> str:
    """The one URI a templated role names for this caller (its workload identity), or "" when there is not exactly
    one that is free of globs."""
    if not role["allowed_uri_sans_template"]:
        return ""
    templated = [u for u in role["allowed_uri_sans"] if "{{" in u]
    rendered = [u for u in render_all(templated, True, ident) if "*" not in u]
    return rendered[0] if len(templated) == 1 and len(rendered) == 1 else ""
