"""Password hashing for userpass, fenced in one place: argon2id (argon2-cffi, RFC 9106 low-memory profile).

Guarantees: a password exists only as an argon2id hash; verifying against an unknown user costs the same as against a
known one (a fixed dummy hash with the same parameters is verified instead), so timing does not reveal which users
exist. Hashing is memory-hard (64 MiB each), so it runs on a small dedicated thread pool: concurrent logins cannot
exhaust memory or stall the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4
# two hashes at a time: 128 MiB at most, whatever the login rate
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of a random password nobody knows, made once, with the same parameters as real ones."""
    return _HASHER.hash(secrets.token_urlsafe(32))


def _verify(stored: str | None, password: str) -> bool:
    try:
        matched = _HASHER.verify(stored if stored is not None else _dummy_hash(), password)
        return matched and stored is not None  # the dummy's password is unknowable, but never let it count
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_POOL, _HASHER.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """True only when ``stored`` is a hash of ``password``; ``None`` (no such user) is checked against the dummy."""
    return await asyncio.get_running_loop().run_in_executor(_POOL, _verify, stored, password)


async def warm_up() -> None:
    """Make the dummy hash before the first login, so the first unknown-user refusal is not slower than the rest."""
    await asyncio.get_running_loop().run_in_executor(_POOL, _dummy_hash)
