"""``sign/<name>[/<alg>]``, ``verify/<name>[/<alg>]`` (signatures or HMACs) and ``hmac/<name>[/<alg>]``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.transit import crypto
from strongroom.engines.transit.ciphertext import b64decode
from strongroom.engines.transit.keys import Policy
from strongroom.engines.transit.path_crypt import run_batch
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.transit.backend import TransitBackend

NAME = Field(FieldType.STRING, "Name of the key", in_path=True, required=True)
ALG_IN_URL = Field(FieldType.STRING, "Hash algorithm to use (URL form).", in_path=True)
COMMON = {
    "name": NAME,
    "urlalgorithm": ALG_IN_URL,
    "input": Field(FieldType.STRING, "The base64 input data."),
    "context": Field(FieldType.STRING, "Base64 context for key derivation (derived keys).", default=""),
    "hash_algorithm": Field(FieldType.STRING, "Hash algorithm: sha1, sha2-224/256/384/512, sha3-224/256/384/512.",
                            default="sha2-256"),
    "algorithm": Field(FieldType.STRING, "Deprecated: use hash_algorithm.", default=""),
    "prehashed": Field(FieldType.BOOL, "The input is already a digest.", default=False),
    "signature_algorithm": Field(FieldType.STRING, "RSA signature algorithm: pss (default) or pkcs1v15.",
                                 default="pss"),
    "marshaling_algorithm": Field(FieldType.STRING, "Signature marshaling: asn1 (default) or jws.", default="asn1"),
    "salt_length": Field(FieldType.STRING, "PSS salt length: auto, hash or a number of bytes.", default="auto"),
    "batch_input": Field(FieldType.ANY, "A list of items with input (and signature/hmac, context, reference)."),
    "partial_failure_response_code": Field(FieldType.INT, "Status code when some but not all batch items failed."),
}
SIGN_FIELDS = {**COMMON, "key_version": Field(FieldType.INT, "Key version to sign with (0: latest).", default=0)}
VERIFY_FIELDS = {
    **COMMON,
    "signature": Field(FieldType.STRING, "The signature to verify, vault:vN:..."),
    "hmac": Field(FieldType.STRING, "The HMAC to verify, vault:vN:..."),
}
HMAC_FIELDS = {
    "name": NAME,
    "urlalgorithm": ALG_IN_URL,
    "input": Field(FieldType.STRING, "The base64 input data."),
    "key_version": Field(FieldType.INT, "Key version for the HMAC (0: latest).", default=0),
    "algorithm": Field(FieldType.STRING, "Hash algorithm for the HMAC.", default="sha2-256"),
    "batch_input": Field(FieldType.ANY, "A list of items with input (and reference)."),
    "partial_failure_response_code": Field(FieldType.INT, "Status code when some but not all batch items failed."),
}


def _algorithm(fd: FieldData, body_field: str) -> str:
    alg = fd.get("urlalgorithm") or (fd.get("algorithm") if body_field != "algorithm" else "") or fd.get(body_field)
    alg = alg or "sha2-256"
    if alg not in crypto.HASH_NAMES:
        raise InvalidRequest(f"unsupported hash algorithm {alg}")
    return alg


def _items(fd: FieldData, extra: tuple[str, ...] = (), *, context: bool = True) -> tuple[list[dict[str, Any]], bool]:
    raw = fd.get("batch_input")
    if raw is None:
        item = {"input": fd.get("input"), "context": fd.get("context") if context else ""}
        for name in extra:
            item[name] = fd.get(name)
        if item["input"] is None:
            raise InvalidRequest("missing input")
        return [item], False
    if not isinstance(raw, list) or not raw or not all(isinstance(i, dict) for i in raw):
        raise InvalidRequest("missing batch input to process" if raw == [] else
                             "failed to parse batch input: expected a list of objects")
    for i, item in enumerate(raw):
        for name in ("input", "context", "reference", *extra):
            if item.get(name) is not None and not isinstance(item[name], str):
                raise InvalidRequest(f"'[{i}].{name}' expected type 'string'")
    return [dict(i) for i in raw], True


def _input(item: dict[str, Any]) -> bytes:
    if item.get("input") is None:
        raise InvalidRequest("missing input")
    try:
        return b64decode(item["input"], "input")
    except InvalidRequest:
        raise InvalidRequest("unable to decode input as base64") from None


def _ctx(item: dict[str, Any]) -> bytes:
    return b64decode(item["context"], "context") if item.get("context") else b""


def paths(b: TransitBackend) -> list[Path]:
    store = b.keys

    async def policy_of(fd: FieldData, message: str = "signing key not found") -> Policy:
        p = await store.get(fd.get("name"))
        if p is None:
            raise InvalidRequest(message)
        return p

    def options(fd: FieldData) -> dict[str, Any]:
        sig_alg = fd.get("signature_algorithm") or "pss"
        if sig_alg not in ("pss", "pkcs1v15"):
            raise InvalidRequest(f"unsupported rsa signature algorithm {sig_alg}")
        return {"hash_algorithm": _algorithm(fd, "hash_algorithm"), "prehashed": fd.get("prehashed"),
                "signature_algorithm": sig_alg, "marshaling": fd.get("marshaling_algorithm") or "asn1",
                "salt_length": fd.get("salt_length") or "auto"}

    async def sign(req: Request, fd: FieldData) -> Response | None:
        opts = options(fd)
        items, batch = _items(fd)
        p = await policy_of(fd)
        if not p.supports_signing:
            raise InvalidRequest(f"key type {p.type} does not support signing")
        version = fd.get("key_version")
        return run_batch(items, batch, fd, lambda item: p.sign(_input(item), key_version=version, context=_ctx(item),
                                                          **opts))

    async def verify(req: Request, fd: FieldData) -> Response | None:
        items, batch = _items(fd, ("signature", "hmac"))
        p = await policy_of(fd)
        is_hmac = any(i.get("hmac") for i in items)
        if not is_hmac:
            opts = options(fd)
            if not p.supports_signing:
                raise InvalidRequest(f"key type {p.type} does not support verification")
        else:
            hmac_alg = _algorithm(fd, "hash_algorithm")

        def one(item: dict[str, Any]) -> dict[str, Any]:
            sig, mac = item.get("signature"), item.get("hmac")
            if sig and mac:
                raise InvalidRequest("provide one of 'signature' or 'hmac'")
            if not sig and not mac:
                raise InvalidRequest("neither a 'signature' nor an 'hmac' were given to verify")
            if mac:
                return {"valid": p.verify_hmac(_input(item), mac, hmac_alg)}
            return {"valid": p.verify(_input(item), str(sig), context=_ctx(item), **opts)}

        return run_batch(items, batch, fd, one)

    async def hmac(req: Request, fd: FieldData) -> Response | None:
        alg = _algorithm(fd, "algorithm")
        items, batch = _items(fd, context=False)
        p = await policy_of(fd, "HMAC key not found")
        version = fd.get("key_version")
        return run_batch(items, batch, fd, lambda item: {"hmac": p.hmac(_input(item), alg, version)})

    name = generic_name("name")
    url_alg = r"(/(?P<urlalgorithm>[\w/-]+))?"
    return [
        Path(pattern=rf"sign/{name}{url_alg}", fields=SIGN_FIELDS, operations={Operation.UPDATE: sign},
             summary="Sign data (or a batch) with a named asymmetric key."),
        Path(pattern=rf"verify/{name}{url_alg}", fields=VERIFY_FIELDS, operations={Operation.UPDATE: verify},
             summary="Verify a signature or an HMAC made with a named key."),
        Path(pattern=rf"hmac/{name}{url_alg}", fields=HMAC_FIELDS, operations={Operation.UPDATE: hmac},
             summary="HMAC data (or a batch) with a named key's HMAC key."),
    ]
