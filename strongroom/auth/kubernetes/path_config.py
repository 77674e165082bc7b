"""auth/<mount>/config: where the Kubernetes API is and how to trust it. The reviewer JWT is never read back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography import x509

from strongroom.auth.jwtutil import TokenError, load_public_key
from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.auth.kubernetes.backend import KubernetesBackend

CONFIG_KEY = "config"

FIELDS = {
    "kubernetes_host": Field(FieldType.STRING, "Host, host:port or URL of the Kubernetes API server."),
    "kubernetes_ca_cert": Field(FieldType.STRING, "PEM CA certificate(s) the Kubernetes API's TLS chain must lead to."),
    "token_reviewer_jwt": Field(FieldType.STRING, "A ServiceAccount JWT allowed to call the TokenReview API. "
                                                  "If unset, the JWT presented at login is used."),
    "pem_keys": Field(FieldType.COMMA_STRING_LIST, "PEM public keys or certificates that verify ServiceAccount "
                                                   "JWT signatures locally."),
    "issuer": Field(FieldType.STRING, "Deprecated: the expected JWT issuer."),
    "disable_iss_validation": Field(FieldType.BOOL, "Deprecated: skip issuer validation.", default=True),
    "disable_local_ca_jwt": Field(FieldType.BOOL, "Do not default to the pod's own CA and token.", default=False),
    "use_annotations_as_alias_metadata": Field(FieldType.BOOL, "Not supported; must be false.", default=False),
}


def _check_ca(pem: str) -> None:
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        certs = []
    if not certs:
        raise InvalidRequest("The provided CA PEM data contains no valid certificates")


def read_config_json(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "kubernetes_host": raw.get("kubernetes_host", ""),
        "kubernetes_ca_cert": raw.get("kubernetes_ca_cert", ""),
        "pem_keys": raw.get("pem_keys") or [],
        "issuer": raw.get("issuer", ""),
        "disable_iss_validation": bool(raw.get("disable_iss_validation", True)),
        "disable_local_ca_jwt": bool(raw.get("disable_local_ca_jwt", False)),
        "token_reviewer_jwt_set": bool(raw.get("token_reviewer_jwt")),
        "use_annotations_as_alias_metadata": False,
    }


def paths(b: KubernetesBackend) -> list[Path]:
    async def exists(req: Request, fd: FieldData) -> bool:
        return await b.ctx.storage.get(CONFIG_KEY) is not None

    async def write(req: Request, fd: FieldData) -> None:
        host = (fd.get("kubernetes_host") or "").strip()
        if not host:
            raise InvalidRequest("no host provided")
        if "://" in host and not host.lower().startswith(("https://", "http://")):
            raise InvalidRequest("kubernetes_host must be a host, host:port or an http(s) URL")
        ca = fd.get("kubernetes_ca_cert") or ""
        if ca:
            _check_ca(ca)
        pem_keys = fd.get("pem_keys") or []
        for pem in pem_keys:
            try:
                load_public_key(pem)
            except TokenError as exc:
                raise InvalidRequest(str(exc)) from None
        if fd.get("use_annotations_as_alias_metadata"):
            raise InvalidRequest("use_annotations_as_alias_metadata is not supported by this server")
        await b.ctx.storage.put_json(CONFIG_KEY, {
            "kubernetes_host": host,
            "kubernetes_ca_cert": ca,
            "token_reviewer_jwt": fd.get("token_reviewer_jwt") or "",
            "pem_keys": pem_keys,
            "issuer": fd.get("issuer") or "",
            "disable_iss_validation": fd.get("disable_iss_validation"),
            "disable_local_ca_jwt": fd.get("disable_local_ca_jwt"),
        })
        b.invalidate()

    async def read(req: Request, fd: FieldData) -> Response:
        raw = await b.ctx.storage.get_json(CONFIG_KEY)
        if raw is None:
            raise NotFound()
        return Response(data=read_config_json(raw))

    return [Path(
        r"config", {Operation.CREATE: write, Operation.UPDATE: write, Operation.READ: read}, FIELDS,
        existence_check=exists, summary="Configure how the Kubernetes API server is reached and trusted.",
    )]
