"""auth/<mount>/config: where the IdP's keys come from (exactly one of discovery, JWKS URL, static keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.auth.jwt.keys import KeyFetchError, fetch
from strongroom.auth.jwtutil import ASYMMETRIC_ALGS, TokenError, load_public_key
from strongroom.core.logical import InvalidRequest, NotFound, Operation, Request, Response
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.auth.jwt.backend import JWTBackend

CONFIG_KEY = "config"

FIELDS = {
    "oidc_discovery_url": Field(FieldType.STRING, "OIDC discovery URL (the issuer), without .well-known."),
    "oidc_discovery_ca_pem": Field(FieldType.STRING, "CA certificate(s) to trust for the discovery URL."),
    "oidc_client_id": Field(FieldType.STRING, "The OAuth client ID (only used by the OIDC browser flow)."),
    "oidc_client_secret": Field(FieldType.STRING, "The OAuth client secret; never returned."),
    "oidc_response_mode": Field(FieldType.STRING, "OIDC response mode (stored, unused)."),
    "oidc_response_types": Field(FieldType.COMMA_STRING_LIST, "OIDC response types (stored, unused)."),
    "jwks_url": Field(FieldType.STRING, "JWKS URL to fetch signing keys from."),
    "jwks_ca_pem": Field(FieldType.STRING, "CA certificate(s) to trust for the JWKS URL."),
    "jwt_validation_pubkeys": Field(FieldType.COMMA_STRING_LIST, "PEM public keys that verify JWT signatures."),
    "jwt_supported_algs": Field(FieldType.COMMA_STRING_LIST, "Accepted signing algorithms (asymmetric only)."),
    "bound_issuer": Field(FieldType.STRING, "The value the JWT's iss claim must have."),
    "default_role": Field(FieldType.STRING, "The role used when a login names none."),
    "provider_config": Field(FieldType.MAP, "Provider-specific configuration (stored, unused)."),
    "namespace_in_state": Field(FieldType.BOOL, "Stored for compatibility.", default=True),
}
_STORED = [k for k in FIELDS if k != "oidc_client_secret"]


def paths(b: JWTBackend) -> list[Path]:
    async def exists(req: Request, fd: FieldData) -> bool:
        return await b.ctx.storage.get(CONFIG_KEY) is not None

    async def write(req: Request, fd: FieldData) -> None:
        cfg: dict[str, Any] = {k: fd.get(k) for k in FIELDS}
        sources = [k for k in ("oidc_discovery_url", "jwks_url", "jwt_validation_pubkeys") if cfg.get(k)]
        if len(sources) != 1:
            raise InvalidRequest("exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' "
                                 "must be set")
        for alg in cfg.get("jwt_supported_algs") or []:
            if alg not in ASYMMETRIC_ALGS:
                raise InvalidRequest(f"invalid supported algorithm: {alg}")
        for pem in cfg.get("jwt_validation_pubkeys") or []:
            try:
                load_public_key(pem)
            except TokenError:
                raise InvalidRequest("error parsing public key: data does not contain any valid RSA or ECDSA "
                                     "public keys") from None
        try:
            if cfg.get("oidc_discovery_url"):
                await fetch(cfg["oidc_discovery_url"], cfg.get("oidc_discovery_ca_pem") or "", discovery=True)
            elif cfg.get("jwks_url"):
                await fetch(cfg["jwks_url"], cfg.get("jwks_ca_pem") or "", discovery=False)
        except KeyFetchError as exc:
            which = "oidc discovery URL" if cfg.get("oidc_discovery_url") else "jwks URL"
            raise InvalidRequest(f"error checking {which}: {exc}") from None
        except ValueError:
            raise InvalidRequest("the CA PEM data contains no valid certificates") from None
        if cfg.get("default_role"):
            cfg["default_role"] = cfg["default_role"].lower()
        await b.ctx.storage.put_json(CONFIG_KEY, cfg)
        b.keys.clear()

    async def read(req: Request, fd: FieldData) -> Response:
        cfg = await b.ctx.storage.get_json(CONFIG_KEY)
        if cfg is None:
            raise NotFound()
        return Response(data={k: cfg.get(k) if cfg.get(k) is not None else FIELDS[k].default for k in _STORED})

    return [Path(r"config", {Operation.CREATE: write, Operation.UPDATE: write, Operation.READ: read}, FIELDS,
                 existence_check=exists, summary="Configure how the IdP's token signatures are verified.")]
