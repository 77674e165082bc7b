"""Small helpers every approle path module shares: name canonicalisation and CIDR block handling."""

from __future__ import annotations

import ipaddress

SALT_KEY = "salt"  # noqa: S105 - a storage key name, not a secret
# Vault refuses longer role names and secret IDs: they are HMAC inputs
MAX_HMAC_INPUT = 4096


def canonical(name: str) -> str:
    return name.lower()


def parse_cidr_blocks(values: list[str]) -> list[str] | None:
    """CIDR blocks (bare addresses become /32 or /128) in canonical form; None when any is not a block."""
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            return None
    return out


def cidr_subset(inner: list[str], outer: list[str]) -> bool:
    """Every block of ``inner`` lies inside some block of ``outer`` (an empty ``outer`` allows anything)."""
    if not inner or not outer:
        return True
    outer_nets = [ipaddress.ip_network(c, strict=False) for c in outer]
    for block in inner:
        net = ipaddress.ip_network(block, strict=False)
        if not any(net.version == o.version and net.subnet_of(o) for o in outer_nets):  # type: ignore[arg-type]
            return False
    return True
