"""The ceiling for ``kv_bench.py``: a Granian RSGI app that answers every request with the same small JSON body.

It measures what the HTTP stack alone costs on this machine, with the same load generator and in the same run as
Strongroom's figures, so a request's cost in Strongroom can be read as a fraction of it. Run by
``kv_bench.py --ceiling``; by hand: ``granian --interface rsgi --loop uvloop --working-dir bench ceiling:app``.
"""

from __future__ import annotations

from typing import Any

_BODY = b'{"request_id":"00000000-0000-0000-0000-000000000000","data":{"data":{"foo":1},"metadata":{"version":1}}}'
_HEADERS = [("content-type", "application/json"), ("cache-control", "no-store")]


class Ceiling:
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        protocol.response_bytes(200, _HEADERS, _BODY)


app = Ceiling()
