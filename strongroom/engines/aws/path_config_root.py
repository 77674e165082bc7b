"""``config/root``: the engine's own AWS credentials, region, endpoints, retries and username template.

Fields not sent keep their stored value, so changing an endpoint does not require resending the secret key. The
secret key is stored behind the barrier and never returned.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.aws import username
from strongroom.engines.aws.entries import get_root, put_root
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.aws.backend import AWSBackend

FIELDS: dict[str, Field] = {
    "access_key": Field(FieldType.STRING, "Access key with permission to create new keys"),
    "secret_key": Field(FieldType.STRING, "Secret key with permission to create new keys"),
    "region": Field(FieldType.STRING, "Region for API calls (default us-east-1)"),
    "iam_endpoint": Field(FieldType.STRING, "Endpoint to use for IAM API calls"),
    "sts_endpoint": Field(FieldType.STRING, "Endpoint to use for STS API calls"),
    "sts_region": Field(FieldType.STRING, "Region for STS API calls (default: region)"),
    "max_retries": Field(FieldType.INT, "Maximum number of retries for recoverable exceptions of AWS APIs"),
    "username_template": Field(FieldType.STRING, "Template to generate custom IAM usernames"),
}
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}")
_STRINGS = ("access_key", "secret_key", "region", "iam_endpoint", "sts_endpoint", "sts_region", "username_template")


def paths(b: AWSBackend) -> list[Path]:
    async def write(req: Request, fd: FieldData) -> Response | None:
        storage = b.storage(req)
        async with storage.lock("config/root"):
            config = await get_root(storage)
            if fd.has("access_key") != fd.has("secret_key") and fd.get("access_key") != config.access_key:
                # a new key ID with the old secret (or the reverse) never works: refuse instead of storing it
                raise InvalidRequest("access_key and secret_key must be given together")
            if fd.has("access_key") and fd.get("access_key") != config.access_key:
                config.retiring_access_key = ""  # a key set by hand ends any rotation in progress
            for name in _STRINGS:
                if fd.has(name):
                    setattr(config, name, fd.get(name).strip())
            if fd.has("max_retries"):
                config.max_retries = fd.get("max_retries")
            if config.max_retries < -1:
                raise InvalidRequest("max_retries must be -1 (the SDK's default) or more")
            for name in ("iam_endpoint", "sts_endpoint"):
                value = getattr(config, name)
                if value and not value.startswith(("https://", "http://")):
                    raise InvalidRequest(f"{name} must be an http(s) URL")
            for name in ("region", "sts_region"):
                if getattr(config, name) and not _REGION.fullmatch(getattr(config, name)):
                    raise InvalidRequest(f"{name} must be an AWS region name such as us-east-1")
            if bool(config.access_key) != bool(config.secret_key):
                raise InvalidRequest("access_key and secret_key must be given together")
            try:
                username.validate(config.username_template)
            except username.TemplateError as exc:
                raise InvalidRequest(f"unable to initialize username template: {exc}") from None
            await put_root(storage, config)
        return None

    async def read(req: Request, fd: FieldData) -> Response:
        return Response(data=(await get_root(b.storage(req))).public())

    return [
        Path(
            pattern=r"config/root",
            fields=FIELDS,
            operations={Operation.UPDATE: write, Operation.READ: read},
            summary="Configure the root credentials that are used to manage IAM.",
        )
    ]
