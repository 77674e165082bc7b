"""``encrypt/<name>``, ``decrypt/<name>``, ``rewrap/<name>`` (single or ``batch_input``) and ``datakey``.

A batch answers one result per item, in order, each with ``error`` instead of a result when that item failed; the
request then answers 400 (500 for an internal failure), or ``partial_failure_response_code`` when some succeeded.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from strongroom.core.logical import InvalidRequest, LogicalError, Operation, Request, Response
from strongroom.engines.transit import attestation, crypto
from strongroom.engines.transit.ciphertext import b64decode
from strongroom.engines.transit.keys import SYMMETRIC, Policy
from strongroom.framework import Field, FieldData, FieldType, Path
from strongroom.framework.path import generic_name

if TYPE_CHECKING:
    from strongroom.engines.transit.backend import TransitBackend

NAME = Field(FieldType.STRING, "Name of the key", in_path=True, required=True)
COMMON = {
    "name": NAME,
    "context": Field(FieldType.STRING, "Base64 context for key derivation (derived keys).", default=""),
    "key_version": Field(FieldType.INT, "The version of the key to use (0: latest).", default=0),
    "associated_data": Field(FieldType.STRING, "Base64 associated data authenticated with AEAD ciphers.", default=""),
    "nonce": Field(FieldType.STRING, "Not used: nonces are random or derived (convergent encryption version 3)."),
    "batch_input": Field(FieldType.ANY, "A list of items, each with this operation's fields."),
    "partial_failure_response_code": Field(FieldType.INT, "Status code when some but not all batch items failed."),
}
ENCRYPT_FIELDS = {
    **COMMON,
    "plaintext": Field(FieldType.STRING, "Base64 plaintext to encrypt."),
    "type": Field(FieldType.STRING, "Key type when the key is created by this request.", default="aes256-gcm96"),
    "convergent_encryption": Field(FieldType.BOOL, "Convergent encryption, when the key is created by this request.",
                                   default=False),
}
DECRYPT_FIELDS = {**COMMON, "ciphertext": Field(FieldType.STRING, "The ciphertext to decrypt, vault:vN:...")}
ATTESTED_DECRYPT_FIELDS = {
    **DECRYPT_FIELDS,
    "attestation_document": Field(FieldType.STRING, "Base64 AWS Nitro attestation document (COSE_Sign1). Required "
                                  "by a key with an attestation policy; the plaintext then comes back only as "
                                  "ciphertext_for_recipient, encrypted to the document's public key."),
}
DATAKEY_FIELDS = {
    **{k: COMMON[k] for k in ("name", "context", "key_version", "associated_data", "nonce")},
    "plaintext": Field(FieldType.STRING, "'plaintext' or 'wrapped'.", in_path=True),
    "bits": Field(FieldType.INT, "Number of bits of the data key: 128, 256 or 512.", default=256),
}

_ITEM_STRINGS = ("plaintext", "ciphertext", "context", "associated_data", "reference", "nonce")


def _items(fd: FieldData, field: str) -> tuple[list[dict[str, Any]], bool]:
    """The request's items, and whether it was a batch. Malformed batch items are refused as a whole, as Vault."""
    raw = fd.get("batch_input")
    if raw is None:
        value = fd.get(field)
        if value is None:
            verb = "encrypt" if field == "plaintext" else "decrypt"
            raise InvalidRequest(f"missing {field} to {verb}")
        item: dict[str, Any] = {field: value, "context": fd.get("context"), "key_version": fd.get("key_version"),
                                "associated_data": fd.get("associated_data")}
        return [item], False
    if not isinstance(raw, list) or not all(isinstance(i, dict) for i in raw):
        raise InvalidRequest("failed to parse batch input: expected a list of objects")
    if not raw:
        raise InvalidRequest("missing batch input to process")
    errors = []
    for i, item in enumerate(raw):
        for name in _ITEM_STRINGS:
            if item.get(name) is not None and not isinstance(item[name], str):
                errors.append(f"'[{i}].{name}' expected type 'string', got unconvertible type "
                              f"'{type(item[name]).__name__}'")
        kv = item.get("key_version")
        if kv is not None and (isinstance(kv, bool) or not isinstance(kv, int)):
            try:
                item["key_version"] = int(kv)
            except (TypeError, ValueError):
                errors.append(f"'[{i}].key_version' expected type 'int', got unconvertible type '{type(kv).__name__}'")
        if item.get(field) is None:
            errors.append(f"'[{i}].{field}' missing {field} to {'encrypt' if field == 'plaintext' else 'decrypt'}")
    if errors:
        raise InvalidRequest("failed to parse batch input: " + "; ".join(errors))
    return [dict(i) for i in raw], True


def run_batch(items: list[dict[str, Any]], batch: bool, fd: FieldData, one: Callable[[dict[str, Any]], dict[str, Any]],
         warnings: list[str] | None = None) -> Response:
    results: list[dict[str, Any]] = []
    user_error = internal_error = success = False
    for item in items:
        try:
            out = one(item)
            success = True
        except InvalidRequest as exc:
            user_error = True
            out = {"error": "; ".join(exc.messages)}
        except LogicalError as exc:
            internal_error = True
            out = {"error": "; ".join(exc.messages)}
        if batch and item.get("reference") is not None:
            out["reference"] = item["reference"]
        results.append(out)
    if not batch:
        if "error" in results[0]:
            raise (InvalidRequest if user_error else LogicalError)(results[0]["error"])
        return Response(data=results[0], warnings=warnings or [])
    status = None
    if user_error or internal_error:
        status = 400 if user_error else 500
        code, has_code = fd.get_ok("partial_failure_response_code")
        if has_code and success and 1 <= code <= 599:
            status = code
    return Response(data={"batch_results": results}, status=status, warnings=warnings or [])


def _context(item: dict[str, Any]) -> bytes:
    return b64decode(item.get("context") or "", "context") if item.get("context") else b""


def _aad(item: dict[str, Any]) -> bytes:
    raw = item.get("associated_data") or ""
    return b64decode(raw, "associated_data") if raw else b""


def _encrypt_item(p: Policy, item: dict[str, Any]) -> dict[str, Any]:
    plaintext = b64decode(item["plaintext"], "plaintext")
    aad = _aad(item)
    if aad and p.type not in SYMMETRIC:
        raise InvalidRequest(f"associated_data provided for non-AEAD cipher suite {p.type}")
    ct, version = p.encrypt(plaintext, context=_context(item), key_version=int(item.get("key_version") or 0),
                            associated_data=aad)
    return {"ciphertext": ct, "key_version": version}


def _decrypt_item(p: Policy, item: dict[str, Any], release: attestation.Release | None) -> dict[str, Any]:
    if release is None:
        plaintext = p.decrypt(item["ciphertext"], context=_context(item), associated_data=_aad(item))
        return {"plaintext": base64.b64encode(plaintext).decode()}
    plaintext = p.decrypt(item["ciphertext"], context=_context(item), associated_data=_aad(item),
                          plaintext_stays_inside=True)
    return {"ciphertext_for_recipient": base64.b64encode(release.seal(plaintext)).decode()}


def paths(b: TransitBackend) -> list[Path]:
    store = b.keys

    async def exists(req: Request, fd: FieldData) -> bool:
        return await store.get(fd.get("name")) is not None

    async def encrypt(req: Request, fd: FieldData) -> Response | None:
        name = fd.get("name")
        items, batch = _items(fd, "plaintext")
        context_set = bool(items[0].get("context"))
        if any(bool(i.get("context")) != context_set for i in items):
            raise InvalidRequest("context should be set either in all the request blocks or in none")
        warnings: list[str] = []
        policy = await store.get(name)
        if policy is None and req.operation is Operation.CREATE:
            convergent = fd.get("convergent_encryption")
            if convergent and not context_set:
                raise InvalidRequest("convergent encryption requires derivation to be enabled, so context is required")
            key_type = fd.get("type")
            if key_type not in SYMMETRIC:
                raise InvalidRequest(f"key type {key_type} not supported for this operation"
                                     if key_type.startswith("ecdsa") else f"unknown key type {key_type}")
            async with store.lock(name):
                policy = await store.get(name)
                if policy is None:
                    policy = Policy.create(name, key_type, derived=context_set, convergent=convergent)
                    await store.put(policy)
                else:
                    warnings.append("Attempted creation of the key during the encrypt operation, but it was created "
                                    "beforehand")
        if policy is None:
            raise InvalidRequest("encryption key not found")
        found = policy
        return run_batch(items, batch, fd, lambda item: _encrypt_item(found, item), warnings)

    async def decrypt(req: Request, fd: FieldData) -> Response | None:
        items, batch = _items(fd, "ciphertext")
        policy = await store.get(fd.get("name"))
        if policy is None:
            raise InvalidRequest("encryption key not found")
        release = None
        document = fd.get("attestation_document")
        if document:
            if policy.attestation is None:
                raise InvalidRequest(f"key {policy.name} has no attestation policy; decrypt it without "
                                     "attestation_document")
            now = attestation.clock(b.dev)
            release = attestation.Release(policy.attestation.admit(b64decode(document, "attestation_document"), now))
        return run_batch(items, batch, fd, lambda item: _decrypt_item(policy, item, release))

    async def rewrap(req: Request, fd: FieldData) -> Response | None:
        items, batch = _items(fd, "ciphertext")
        policy = await store.get(fd.get("name"))
        if policy is None:
            raise InvalidRequest("encryption key not found")

        def one(item: dict[str, Any]) -> dict[str, Any]:
            context = _context(item)
            aad = _aad(item)
            # the plaintext is re-encrypted at once and never answered, so an attestation-bound key may rewrap
            plaintext = policy.decrypt(item["ciphertext"], context=context, associated_data=aad,
                                       plaintext_stays_inside=True)
            ct, version = policy.encrypt(plaintext, context=context, key_version=int(item.get("key_version") or 0),
                                         associated_data=aad)
            return {"ciphertext": ct, "key_version": version}

        return run_batch(items, batch, fd, one)

    async def datakey(req: Request, fd: FieldData) -> Response | None:
        kind = fd.get("plaintext")
        if kind not in ("plaintext", "wrapped"):
            raise InvalidRequest("Invalid path")
        bits = fd.get("bits")
        if bits not in (128, 256, 512):
            raise InvalidRequest("invalid bits")
        policy = await store.get(fd.get("name"))
        if policy is None:
            raise InvalidRequest("encryption key not found")
        if kind == "plaintext":
            policy.refuse_if_bound()
        key = crypto.random_bytes(bits // 8)
        ct, version = policy.encrypt(key, context=_context({"context": fd.get("context")}),
                                     key_version=fd.get("key_version"),
                                     associated_data=_aad({"associated_data": fd.get("associated_data")}))
        data = {"ciphertext": ct, "key_version": version}
        if kind == "plaintext":
            data["plaintext"] = base64.b64encode(key).decode()
        return Response(data=data)

    name = generic_name("name")
    return [
        Path(pattern=rf"encrypt/{name}", fields=ENCRYPT_FIELDS, operations={Operation.UPDATE: encrypt},
             existence_check=exists, summary="Encrypt a plaintext or a batch of plaintexts with a named key."),
        Path(pattern=rf"decrypt/{name}", fields=ATTESTED_DECRYPT_FIELDS, operations={Operation.UPDATE: decrypt},
             summary="Decrypt a ciphertext or a batch of ciphertexts with a named key."),
        Path(pattern=rf"rewrap/{name}", fields=DECRYPT_FIELDS, operations={Operation.UPDATE: rewrap},
             summary="Re-encrypt ciphertexts with the latest (or given) version of a named key."),
        Path(pattern=rf"datakey/(?P<plaintext>\w+)/{name}", fields=DATAKEY_FIELDS,
             operations={Operation.UPDATE: datakey}, summary="Generate a data key, wrapped by a named key."),
    ]
