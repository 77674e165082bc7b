"""Pathological JSON is refused at parse time with a 400, before authentication or audit, and never as a 500.

Issue 18 item 9: 255 to 1,023 levels of nesting broke every audit device (the encoders stop at 254 levels), filled
the log with tracebacks from an unauthenticated request and answered 500.
"""

from __future__ import annotations

import httpx
import pytest

from strongroom.api.http import MAX_JSON_ARRAY_ELEMENTS, MAX_JSON_DEPTH

from .conftest import Audited


def _nested(levels: int) -> bytes:
    """A JSON object whose nesting depth (the outer object included) is ``levels``."""
    return b'{"data":' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


@pytest.mark.parametrize("levels", [255, 300, 301, 512, 1023, 1024, 5000])
@pytest.mark.parametrize("authenticated", [False, True])
def test_deep_nesting_is_a_400_before_audit(audited: Audited, levels: int, authenticated: bool) -> None:
    server = audited.server
    path = f"/v1/cubbyhole/deep-{levels}-{int(authenticated)}"
    before = audited.audit_text()
    with server.http() if authenticated else httpx.Client(base_url=server.addr, timeout=30) as http:
        r = http.post(path, content=_nested(levels), headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["errors"] == [
            f"failed to parse JSON input: JSON input exceeds the maximum nesting depth of {MAX_JSON_DEPTH}"
        ]
        # unauthenticated sys endpoints parse their bodies too
        unseal = http.put("/v1/sys/unseal", content=_nested(levels))
        assert unseal.status_code == 400, unseal.text
    assert audited.audit_text() == before  # refused before anything was recorded
    with server.http() as root:
        assert root.get(path).status_code == 404  # and nothing was stored
    log = audited.server_log()
    assert "Traceback" not in log and "internal error" not in log


def test_nesting_within_the_limit_is_stored_audited_and_read_back(audited: Audited) -> None:
    levels = MAX_JSON_DEPTH
    with audited.server.http() as http:
        w = http.post("/v1/cubbyhole/deep-ok", content=_nested(levels))
        assert w.status_code == 204, w.text
        r = http.get("/v1/cubbyhole/deep-ok")
        assert r.status_code == 200, r.text
    value, depth = r.json()["data"]["data"], 2
    while value:
        value, depth = value[0], depth + 1
    assert depth == levels
    assert any(
        (e.get("request") or {}).get("path") == "cubbyhole/deep-ok" and e.get("type") == "response"
        for e in audited.audit_entries()
    )


def test_wide_arrays_and_long_strings_are_refused(audited: Audited) -> None:
    with audited.server.http() as http:
        wide = http.post("/v1/cubbyhole/wide", json={"data": list(range(MAX_JSON_ARRAY_ELEMENTS + 1))})
        assert wide.status_code == 400 and "more than" in wide.json()["errors"][0]
        entries = http.post("/v1/cubbyhole/wide", json={f"k{i}": i for i in range(10_001)})
        assert entries.status_code == 400 and "entries" in entries.json()["errors"][0]
        long = http.post("/v1/cubbyhole/long", json={"data": "x" * (1024 * 1024 + 1)})
        assert long.status_code == 400 and "longer than" in long.json()["errors"][0]
        assert http.get("/v1/cubbyhole/wide").status_code == 404
        assert http.get("/v1/cubbyhole/long").status_code == 404
        # a megabyte value is fine
        assert http.post("/v1/cubbyhole/long", json={"data": "x" * (1024 * 1024)}).status_code == 204
