"""``strongroom.secretstore``: how a service reads its secrets, with no configuration inside a pod.

    from strongroom import secretstore
    password = secretstore.path("canary", "2019-05-11").string()
    # reads key 'data' of secret/k8s/<namespace>/<service-account>/canary/2019-05-11

The pod's ServiceAccount token is the only credential: the library logs in with the ``kubernetes`` auth method, keeps
and renews the token, retries transient failures with jittered exponential backoff, and raises :class:`SecretNotFound`,
:class:`PermissionDenied` or :class:`Unavailable`. ``await secretstore.aio.path(...).string()`` is the asyncio form.
``secretstore.database_credentials("rw")`` keeps short-lived database credentials renewed.
"""

from __future__ import annotations

import threading

from strongroom.secretstore import aio, database
from strongroom.secretstore.aws import aws_credentials as aws_credentials
from strongroom.secretstore.certificate import certificate
from strongroom.secretstore.client import Client, SecretPath
from strongroom.secretstore.database import database_credentials
from strongroom.secretstore.errors import (
    ConfigurationError,
    PermissionDenied,
    SecretNotFound,
    SecretStoreError,
    Unavailable,
)
from strongroom.secretstore.settings import Settings

_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client, created on first use from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def path(name: str, version: str) -> SecretPath:
    return default_client().path(name, version)


def ready() -> bool:
    return default_client().ready()


__all__ = [
    "Client",
    "ConfigurationError",
    "PermissionDenied",
    "SecretNotFound",
    "SecretPath",
    "SecretStoreError",
    "Settings",
    "Unavailable",
    "aio",
    "certificate",
    "database",
    "database_credentials",
    "default_client",
    "path",
    "ready",
]
