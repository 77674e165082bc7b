"""``serviceaccounts/config`` (where ServiceAccounts come from) and ``serviceaccounts/status`` (how that is going).

Writing the config restarts the sources. The bearer token is stored behind the barrier and never returned.
"""

from __future__ import annotations

import re
from dataclasses import asdict

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.database.serviceaccounts import ServiceAccountBackend, SourceConfig
from strongroom.framework import Field, FieldData, FieldType, Path

_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")

_PLAIN = ("kubernetes_host", "kubernetes_ca_cert", "annotation_prefix", "manifests_dir", "manifests_refresh")

FIELDS: dict[str, Field] = {
    "kubernetes_host": Field(FieldType.STRING, "Kubernetes API URL; empty disables the watcher"),
    "kubernetes_ca_cert": Field(FieldType.STRING, "PEM CA certificate of the Kubernetes API"),
    "token": Field(FieldType.STRING, "Bearer token allowed to list and watch serviceaccounts cluster-wide"),
    "jwt": Field(FieldType.STRING, "Alias of token (Monzo's name)"),
    "annotation_prefix": Field(FieldType.STRING, "Annotation prefix, e.g. strongroom.io"),
    "manifests_dir": Field(FieldType.STRING, "Directory of ServiceAccount manifests (GitOps); empty disables it"),
    "manifests_refresh": Field(FieldType.DURATION, "How often the manifest directory is re-read"),
}


def paths(b: ServiceAccountBackend) -> list[Path]:
    async def write(req: Request, fd: FieldData) -> Response | None:
        cfg = SourceConfig(**asdict(b.service_accounts.config))
        for name in (
            "kubernetes_host",
            "kubernetes_ca_cert",
            "annotation_prefix",
            "manifests_dir",
            "manifests_refresh",
        ):
            if fd.has(name):
                setattr(cfg, name, fd.get(name))
        if fd.has("token") or fd.has("jwt"):
            cfg.token = fd.get("token") if fd.has("token") else fd.get("jwt")
        if cfg.kubernetes_host and not cfg.kubernetes_host.startswith(("https://", "http://")):
            raise InvalidRequest("kubernetes_host must be an http(s) URL")
        if not _PREFIX.fullmatch(cfg.annotation_prefix.rstrip("/")):
            raise InvalidRequest("annotation_prefix must be a DNS name such as strongroom.io")
        cfg.annotation_prefix = cfg.annotation_prefix.rstrip("/")
        await b.service_accounts.apply(cfg)
        return None

    async def read(req: Request, fd: FieldData) -> Response:
        return Response(data=b.service_accounts.config.public())

    async def status(req: Request, fd: FieldData) -> Response:
        return Response(data=b.service_accounts.status())

    return [
        Path(
            pattern=r"serviceaccounts/config",
            fields=FIELDS,
            operations={Operation.UPDATE: write, Operation.READ: read},
            summary="Configure where ServiceAccount annotations come from.",
        ),
        Path(
            pattern=r"serviceaccounts/status",
            operations={Operation.READ: status},
            summary="Sync state of the ServiceAccount sources.",
        ),
    ]
