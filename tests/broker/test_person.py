"""The same person, whatever account they use: the configured person claim decides who may review what."""

from __future__ import annotations

import httpx
import pytest

from broker.conftest import PEOPLE, base_config
from strongroom.broker.config import ConfigError, parse_config


def test_a_second_account_with_other_subject_and_email_cannot_approve(broker):
    req = broker.request("alice")
    # alice-hr has its own subject and mailbox and sits in the approve group; only the HR id says it is Alice.
    r = broker.review("alice-hr", req["id"])
    assert r.status_code == 403 and "your own request" in r.json()["errors"][0]
    seen = broker.as_("bob").get(f"/v1/requests/{req['id']}").json()["request"]
    assert seen["state"] == "pending" and seen["reviews"] == []
    assert seen["requester"]["person"] == "E1001"
    assert broker.review("bob", req["id"]).json()["request"]["state"] == "approved"


def test_two_approvals_need_two_people_not_two_accounts(broker):
    req = broker.request("bob", kind="k8s-two")
    assert broker.review("carol", req["id"]).status_code == 200
    # Carol under a second account (new subject, new mailbox, same HR id) does not count as a second approver.
    carol_again = broker.idp.token("u-carol-admin", ["platform-leads"], email="c.admin@ops.bank.test",
                                   extra={"employee_id": PEOPLE["carol"]["hr"]})
    r = httpx.post(f"{broker.addr}/v1/requests/{req['id']}/review", json={"decision": "approve", "comment": "ok"},
                   headers={"Authorization": f"Bearer {carol_again}"})
    assert r.status_code == 409 and "already reviewed" in r.json()["errors"][0]
    assert broker.review("alice-hr", req["id"]).json()["request"]["state"] == "approved"


def test_a_token_without_the_person_claim_is_refused(broker):
    p = PEOPLE["bob"]
    bare = broker.idp.token(p["sub"], p["groups"], email=p["email"], extra={})
    r = httpx.get(f"{broker.addr}/v1/requests", headers={"Authorization": f"Bearer {bare}"})
    assert r.status_code == 401 and "employee_id" in r.json()["errors"][0]
    blank = broker.idp.token(p["sub"], p["groups"], email=p["email"], extra={"employee_id": "  "})
    assert httpx.get(f"{broker.addr}/v1/requests", headers={"Authorization": f"Bearer {blank}"}).status_code == 401


def _production(tmp_path, idp, receiver):
    raw = base_config(tmp_path, idp, receiver)
    raw["broker"].update({"production": True, "public_url": "https://mpa.bank.test"})
    raw["idp"]["jwks_url"] = "https://idp.bank.test/jwks.json"
    return raw


def test_production_refuses_a_config_that_cannot_tell_people_apart(tmp_path, idp, receiver):
    raw = _production(tmp_path, idp, receiver)
    assert parse_config(raw, tmp_path).idp.person_claim == "employee_id"
    del raw["idp"]["person_claim"]
    with pytest.raises(ConfigError, match="person_claim is required in production"):
        parse_config(raw, tmp_path)
    for account_claim in ("sub", "email", "groups"):
        raw["idp"]["person_claim"] = account_claim
        with pytest.raises(ConfigError, match="names an account, not a person"):
            parse_config(raw, tmp_path)
    raw["idp"]["person_claim"] = ["employee_id"]
    with pytest.raises(ConfigError, match="name of a claim"):
        parse_config(raw, tmp_path)
    # A development broker may go without; it then compares subjects and emails only.
    raw["broker"]["production"] = False
    del raw["idp"]["person_claim"]
    assert parse_config(raw, tmp_path).idp.person_claim == ""
