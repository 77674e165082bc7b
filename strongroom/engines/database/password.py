"""Passwords for database users: from ``secrets``, at least 95 bits of entropy, safe inside any quoting.

The alphabet is letters, digits and ``-``: nothing that ends a CQL or SQL string literal (``'``), a quoted identifier
(``"``), escapes (``\\``), or needs percent-encoding in a connection URL. Policies name a length; every generated
password holds at least one upper-case letter, one lower-case letter and one digit (Vault's default rule), drawn by
rejection so the result stays uniform over the passwords that satisfy it.
"""

from __future__ import annotations

import math
import secrets
import string

ALPHABET = string.ascii_letters + string.digits + "-"
MIN_ENTROPY_BITS = 95

# Built-in password policies (Vault keeps named policies under sys/policies/password; these are ours)
POLICIES = {"default": 24, "long": 40, "extra-long": 64}


def entropy_bits(length: int, alphabet: str = ALPHABET) -> float:
    return length * math.log2(len(alphabet))


def policy_length(policy: str) -> int:
    length = POLICIES.get(policy or "default")
    if length is None:
        raise ValueError(f"unknown password policy {policy!r}; known: {', '.join(sorted(POLICIES))}")
    return length


def generate(policy: str = "default") -> str:
    length = policy_length(policy)
    assert entropy_bits(length) >= MIN_ENTROPY_BITS
    while True:
        candidate = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if (
            any(c.isupper() for c in candidate)
            and any(c.islower() for c in candidate)
            and any(c.isdigit() for c in candidate)
            and not candidate.startswith("-")
        ):
            return candidate
