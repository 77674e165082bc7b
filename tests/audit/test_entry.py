"""Entry building: what is HMAC'd, what stays readable."""

from __future__ import annotations

import re

from strongroom.audit.entry import hash_structure, hmac_hasher, request_entry, response_entry, rfc3339_nano

from .helpers import ACCESSOR, SECRET, TOKEN, context

H = hmac_hasher(b"k" * 32)


def test_every_leaf_string_and_number_is_hmacd_but_keys_bools_and_nulls_stay() -> None:
    out = hash_structure(
        {"a": SECRET, "n": 7, "f": 1.5, "b": False, "z": None, "l": [SECRET, {"deep": "x"}], "e": ""}, H
    )
    assert out["a"] == H(SECRET) and out["n"] == H("7") and out["f"] == H("1.5")
    assert out["b"] is False and out["z"] is None and out["e"] == ""
    assert out["l"] == [H(SECRET), {"deep": H("x")}]


def test_response_entry_hashes_auth_wrap_info_and_keeps_error_and_lease_id() -> None:
    ctx = context()
    body = {
        "lease_id": "database/creds/k8s_rw_s-ledger_default/abc",
        "data": {"username": "v-user", "password": SECRET},
        "wrap_info": {"token": TOKEN, "accessor": ACCESSOR, "ttl": 60},
        "auth": {"client_token": TOKEN, "accessor": ACCESSOR, "policies": ["default"], "metadata": {"role": "r"}},
    }
    entry = response_entry(ctx, body, "permission denied", H)
    resp = entry["response"]
    assert entry["error"] == "permission denied"
    assert resp["secret"] == {"lease_id": "database/creds/k8s_rw_s-ledger_default/abc"}
    assert resp["data"]["password"] == H(SECRET)
    assert resp["wrap_info"]["token"] == H(TOKEN) and resp["wrap_info"]["ttl"] == 60
    assert resp["auth"]["client_token"] == H(TOKEN) and resp["auth"]["accessor"] == H(ACCESSOR)
    assert resp["auth"]["metadata"] == {"role": "r"}


def test_request_and_response_entries_share_one_hmac_pass_per_device() -> None:
    ctx = context()
    first = request_entry(ctx, H, memo_key="dev")
    second = response_entry(ctx, None, None, H, memo_key="dev")
    assert first["request"] is second["request"] and first["auth"] is second["auth"]


def test_time_is_rfc3339_nano_utc() -> None:
    assert rfc3339_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", rfc3339_nano())
