"""Every AWS call the engine makes, through boto3, in a worker thread so the event loop never waits on AWS.

Clients are built from the stored ``config/root`` and kept per configuration (a changed key, endpoint or region
builds new ones). With no access key configured, boto3's own chain (environment, instance profile) is used, as in
Vault. Errors come back as :class:`AWSError` with AWS's error code and a message that names the operation, never
a key: botocore's messages carry the code, the operation and AWS's text, and endpoint URLs are stripped of userinfo.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from dataclasses import astuple
from typing import Any, TypeVar

from strongroom.engines.aws.entries import RootConfig

T = TypeVar("T")

_DEFAULT_REGION = "us-east-1"
_USERINFO = re.compile(r"(\w+://)[^/@\s]*@")


class AWSError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Clients:
    """IAM and STS clients for one configuration; boto3 clients are thread-safe once built."""

    def __init__(self, config: RootConfig) -> None:
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 30}
        if config.max_retries >= 0:
            options["retries"] = {"total_max_attempts": config.max_retries + 1, "mode": "standard"}
        session = boto3.session.Session(
            aws_access_key_id=config.access_key or None,
            aws_secret_access_key=config.secret_key or None,
            region_name=config.region or _DEFAULT_REGION,
        )
        self.iam = session.client("iam", endpoint_url=config.iam_endpoint or None, config=Config(**options))
        self.sts = session.client(
            "sts",
            endpoint_url=config.sts_endpoint or None,
            region_name=config.sts_region or config.region or _DEFAULT_REGION,
            config=Config(**options),
        )


class ClientCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[tuple[Any, ...], Clients] | None = None

    async def get(self, config: RootConfig) -> Clients:
        key = astuple(config)
        cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[1]
        clients = await asyncio.to_thread(self._build, key, config)
        return clients

    def _build(self, key: tuple[Any, ...], config: RootConfig) -> Clients:
        with self._lock:  # boto3 sessions are not safe to build concurrently
            if self._cached is not None and self._cached[0] == key:
                return self._cached[1]
            clients = Clients(config)
            self._cached = (key, clients)
            return clients


async def call(fn: Callable[..., T], **kwargs: Any) -> T:
    """Run one boto3 call off the event loop; botocore's errors become :class:`AWSError`."""
    return await asyncio.to_thread(_call, fn, kwargs)


def _call(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error") or {}
        raise AWSError(str(error.get("Code") or "Unknown"), _clean(str(exc))) from None
    except BotoCoreError as exc:
        raise AWSError(type(exc).__name__, _clean(str(exc))) from None


def _clean(message: str) -> str:
    return _USERINFO.sub(r"\1", message)[:500]
