"""Key-less utilities: ``random[/<source>][/<bytes>]`` and ``hash[/<algorithm>]``."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from strongroom.core.logical import InvalidRequest, Operation, Request, Response
from strongroom.engines.transit import crypto
from strongroom.engines.transit.ciphertext import b64decode
from strongroom.framework import Field, FieldData, FieldType, Path

if TYPE_CHECKING:
    from strongroom.engines.transit.backend import TransitBackend

MAX_RANDOM = 1024 * 1024
RANDOM_FIELDS = {
    "urlbytes": Field(FieldType.STRING, "The number of bytes to generate (URL form).", in_path=True),
    "bytes": Field(FieldType.INT, "The number of bytes to generate.", default=32),
    "format": Field(FieldType.STRING, "Encoding of the output: base64 (default) or hex.", default="base64"),
    "source": Field(FieldType.STRING, "Entropy source: platform (default), seal or all.", default="platform"),
}
HASH_FIELDS = {
    "urlalgorithm": Field(FieldType.STRING, "Hash algorithm (URL form).", in_path=True),
    "input": Field(FieldType.STRING, "The base64 input data.", required=True),
    "algorithm": Field(FieldType.STRING, "Hash algorithm: sha2-256 (default), sha2-224/384/512, sha3-*, sha1.",
                       default="sha2-256"),
    "format": Field(FieldType.STRING, "Encoding of the output: hex (default) or base64.", default="hex"),
}


def _encode(data: bytes, fmt: str) -> str:
    if fmt == "hex":
        return data.hex()
    if fmt == "base64":
        return base64.b64encode(data).decode()
    raise InvalidRequest(f'unsupported encoding format {fmt}; must be "hex" or "base64"')


def paths(b: TransitBackend) -> list[Path]:
    async def random(req: Request, fd: FieldData) -> Response | None:
        count = fd.get("bytes")
        if fd.get("urlbytes"):
            try:
                count = int(fd.get("urlbytes"))
            except ValueError:
                raise InvalidRequest(f"error parsing url-set byte count: {fd.get('urlbytes')}") from None
        source = fd.get("source")
        if source not in ("platform", "seal", "all"):
            raise InvalidRequest(f'unsupported entropy source {source}; must be "platform" or "seal", or "all"')
        if count < 1:
            raise InvalidRequest('the value of "bytes" cannot be less than 1')
        if count > MAX_RANDOM:
            raise InvalidRequest(f'the value of "bytes" cannot be more than {MAX_RANDOM}')
        fmt = fd.get("format")
        if fmt not in ("hex", "base64"):
            raise InvalidRequest(f'unsupported encoding format {fmt}; must be "hex" or "base64"')
        # Shamir seals have no entropy source of their own: every source is the platform's CSPRNG
        return Response(data={"random_bytes": _encode(crypto.random_bytes(count), fmt)})

    async def hash_(req: Request, fd: FieldData) -> Response | None:
        alg = fd.get("urlalgorithm") or fd.get("algorithm")
        if alg not in crypto.HASH_NAMES:
            raise InvalidRequest(f"unsupported algorithm {alg}")
        fmt = fd.get("format")
        if fmt not in ("hex", "base64"):
            raise InvalidRequest(f"unsupported encoding format {fmt}; must be \"hex\" or \"base64\"")
        try:
            data = b64decode(fd.get("input"), "input")
        except InvalidRequest:
            raise InvalidRequest("unable to decode input as base64") from None
        return Response(data={"sum": _encode(crypto.digest(alg, data), fmt)})

    sources = r"(?P<source>[A-Za-z]\w*)"  # any word, so an unknown source gets a 400 that names the valid ones
    return [
        Path(pattern=rf"random(/{sources})?(/(?P<urlbytes>[^/]+))?", fields=RANDOM_FIELDS,
             operations={Operation.UPDATE: random}, summary="Generate random bytes."),
        Path(pattern=r"hash(/(?P<urlalgorithm>[\w/-]+))?", fields=HASH_FIELDS,
             operations={Operation.UPDATE: hash_}, summary="Hash data."),
    ]
