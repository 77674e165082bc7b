"""Fixtures for the MPA broker: a test IdP, a Slack receiver, and a broker served over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.harness import AsgiThread, Clock, Receiver, TestIdp
from broker.standin import StandIn
from strongroom.broker.app import BrokerApp
from strongroom.broker.config import parse_config
from strongroom.broker.oidc import generate_signing_key
from strongroom.broker.runtime import BrokerRuntime
from strongroom.broker.seed import SeedKeys

REPO = Path(__file__).resolve().parents[2]
_KEYS: dict[str, str] = {}


def signing_key(alg: str = "RS256") -> str:
    if alg not in _KEYS:
        _KEYS[alg] = generate_signing_key(alg)
    return _KEYS[alg]


# People. Bob and Carol approve; Alice requests; alice2, alice-mail and alice-hr are Alice again under second
# accounts: the same subject, the same mailbox, and neither (only the HR id of the person claim is hers).
PEOPLE: dict[str, dict[str, Any]] = {
    "alice": {"sub": "u-alice", "email": "alice@bank.test", "groups": ["platform"], "hr": "E1001"},
    "alice2": {"sub": "u-alice", "email": "alice.admin@bank.test", "groups": ["platform", "platform-leads"],
               "hr": "E1001"},
    "alice-mail": {"sub": "u-alice-second", "email": "alice@bank.test", "groups": ["platform-leads"], "hr": "E1001"},
    "alice-hr": {"sub": "u-alice-admin", "email": "a.admin@ops.bank.test", "groups": ["platform-leads", "security"],
                 "hr": "E1001"},
    "bob": {"sub": "u-bob", "email": "bob@bank.test", "groups": ["platform", "platform-leads"], "hr": "E1002"},
    "carol": {"sub": "u-carol", "email": "carol@bank.test", "groups": ["platform-leads", "security"], "hr": "E1003"},
    "dave": {"sub": "u-dave", "email": "dave@bank.test", "groups": ["platform", "sre-oncall"], "hr": "E1004"},
    "erin": {"sub": "u-erin", "email": "erin@bank.test", "groups": ["marketing"], "hr": "E1005"},
    "sam": {"sub": "u-sam", "email": "sam@bank.test", "groups": ["security"], "hr": "E1006"},
}


def base_config(tmp: Path, idp: TestIdp, receiver: Receiver, strongroom_addr: str | None = None,
                **kind_overrides: dict[str, Any]) -> dict[str, Any]:
    kinds: dict[str, Any] = {
        "k8s-admin": {"type": "kubernetes", "request_groups": ["platform"], "approve_groups": ["platform-leads"],
                      "approvals": 1, "audience": "kubernetes", "groups": ["mpa:cluster-admin"]},
        "k8s-two": {"type": "kubernetes", "request_groups": ["platform"], "approve_groups": ["platform-leads"],
                    "approvals": 2, "max_duration": "30m"},
        "strongroom-admin": {"type": "strongroom-admin", "request_groups": ["platform"],
                             "approve_groups": ["platform-leads"], "policy": "kv-destroyer"},
        "db-superuser": {"type": "database", "request_groups": ["platform"], "approve_groups": ["platform-leads"],
                         "role": "superuser", "mount": "database"},
        "broker-deploy": {"type": "broker-deploy", "request_groups": ["security"],
                          "approve_groups": ["platform-leads", "security"]},
    }
    kinds.update(kind_overrides)
    return {
        "broker": {"listen": "127.0.0.1:0", "public_url": "https://mpa.bank.test", "production": False,
                   "storage": f"sqlite:///{tmp / 'broker.db'}", "audit_log": str(tmp / "audit.jsonl")},
        "idp": {"issuer": idp.issuer, "audience": idp.audience, "jwks_url": idp.jwks_url,
                "person_claim": "employee_id"},
        "seed": {"file": str(tmp / "seed.json"), "token_file": str(tmp / "seed-token")},
        "notify": {"slack_webhook": f"{receiver.url}/slack", "critical_webhook": f"{receiver.url}/page"},
        "break_glass": {"groups": ["sre-oncall"], "duration": "5m"},
        "strongroom": {"addr": strongroom_addr} if strongroom_addr else {},
        "kinds": kinds,
    }


class RunningBroker:
    def __init__(self, tmp: Path, idp: TestIdp, raw: dict[str, Any], *, strongroom_token: str | None,
                 alg: str = "RS256") -> None:
        self.idp = idp
        self.clock = Clock()
        self.config = parse_config(raw, tmp)
        self.runtime = BrokerRuntime(self.config, SeedKeys(signing_key(alg), strongroom_token), clock=self.clock,
                                     measurement="ab" * 48, sweep_interval=0.1, retry_base_delay=0.05)
        self.server = AsgiThread(BrokerApp(self.runtime)).start()
        self.addr = self.server.addr
        self.audit_path = Path(self.config.audit_log)

    def token(self, who: str, **kw: Any) -> str:
        p = PEOPLE[who]
        kw.setdefault("extra", {"employee_id": p["hr"]})
        return self.idp.token(p["sub"], p["groups"], email=p["email"], name=who, **kw)

    def as_(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.addr, headers={"Authorization": f"Bearer {self.token(who)}"}, timeout=30)

    def request(self, who: str, kind: str = "k8s-admin", reason: str = "Rotate the etcd encryption key, INC-4711",
                **extra: Any) -> dict[str, Any]:
        r = self.as_(who).post("/v1/requests", json={"kind": kind, "reason": reason, **extra})
        assert r.status_code == 201, r.text
        return r.json()["request"]

    def review(self, who: str, rid: str, decision: str = "approve", comment: str = "looks right") -> httpx.Response:
        return self.as_(who).post(f"/v1/requests/{rid}/review", json={"decision": decision, "comment": comment})

    def fetch(self, who: str, rid: str) -> httpx.Response:
        return self.as_(who).post(f"/v1/requests/{rid}/fetch")

    def audit_lines(self) -> list[dict[str, Any]]:
        import orjson

        return [orjson.loads(line) for line in self.audit_path.read_bytes().splitlines() if line]

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def idp() -> Iterator[TestIdp]:
    provider = TestIdp()
    yield provider
    provider.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def standin() -> Iterator[tuple[StandIn, str]]:
    app = StandIn()
    thread = AsgiThread(app).start()
    yield app, thread.addr
    thread.stop()


@pytest.fixture
def make_broker(tmp_path: Path, idp: TestIdp, receiver: Receiver) -> Iterator[Any]:
    running: list[RunningBroker] = []

    def make(*, strongroom: tuple[str, str] | None = None, alg: str = "RS256", **kinds: Any) -> RunningBroker:
        addr, token = strongroom if strongroom else (None, None)
        raw = base_config(tmp_path, idp, receiver, addr, **kinds)
        b = RunningBroker(tmp_path, idp, raw, strongroom_token=token, alg=alg)
        running.append(b)
        return b

    yield make
    for b in running:
        b.stop()


@pytest.fixture
def broker(make_broker: Any) -> RunningBroker:
    return make_broker()


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("STRONGROOM_TEST_POSTGRES")
    if given:
        yield given
        return
    directory = tmp_path_factory.mktemp("mpa-postgres")
    script = str(REPO / "scripts" / "postgres-node")
    result = subprocess.run([sys.executable, script, "start", str(directory)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"scripts/postgres-node failed: {result.stderr[-2000:]}", pytrace=False)
    try:
        yield result.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([sys.executable, script, "stop", str(directory)], capture_output=True)
