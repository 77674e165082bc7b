"""Issue 4 item 7's isolation matrix: with nothing but its ServiceAccount token and the bootstrap defaults, a service
reads its own secrets and nothing else; odd ServiceAccount names never widen access.

Runs against a real dev server (bootstrap installed auth/kubernetes, kubernetes-reader and role ``default``); the
Kubernetes API server is the TokenReview stand-in from tests/identity/k8s_tokens.py.
"""

from __future__ import annotations

import hvac
import pytest

SECRETS = {
    "k8s/default/s-emoji/canary/2019-05-11": "emoji-canary",
    "k8s/default/s-emoji/aws/access-key-id": "emoji-aws",
    "k8s/default/s-ledger/canary/2019-05-11": "ledger-canary",
    "k8s/default/s-ledger/db/password": "ledger-db",
    "k8s/payments/s-emoji/canary/2019-05-11": "payments-emoji-canary",
}


@pytest.fixture
def seeded(k8s):  # noqa: ANN001, ANN201
    for path, value in SECRETS.items():
        k8s.root.secrets.kv.v2.create_or_update_secret(path=path, secret={"data": value}, mount_point="secret")
    return k8s


def _login(env, namespace: str, name: str) -> hvac.Client:  # noqa: ANN001
    sa = env.cluster.service_account(namespace, name)
    return env.login(env.cluster.projected_token(sa))


def _read(client: hvac.Client, path: str) -> str | int:
    """The secret's value, or the HTTP status of the refusal."""
    with httpx_client(client) as http:
        r = http.get(f"/v1/secret/data/{path}")
    return r.json()["data"]["data"]["data"] if r.status_code == 200 else r.status_code


def _list(client: hvac.Client, path: str) -> list[str] | int:
    with httpx_client(client) as http:
        r = http.get(f"/v1/secret/metadata/{path}", params={"list": "true"})
    return r.json()["data"]["keys"] if r.status_code == 200 else r.status_code


def httpx_client(client: hvac.Client):  # noqa: ANN201
    import httpx

    return httpx.Client(base_url=client.url, headers={"X-Vault-Token": client.token}, timeout=30)


def test_a_new_service_reads_its_own_secrets_with_no_setup(seeded) -> None:  # noqa: ANN001
    emoji = _login(seeded, "default", "s-emoji")
    # the hvac path a service library takes
    got = emoji.secrets.kv.v2.read_secret_version(path="k8s/default/s-emoji/canary/2019-05-11", mount_point="secret",
                                                  raise_on_deleted_version=True)
    assert got["data"]["data"] == {"data": "emoji-canary"}
    assert _read(emoji, "k8s/default/s-emoji/aws/access-key-id") == "emoji-aws"
    assert sorted(_list(emoji, "k8s/default/s-emoji/")) == ["aws/", "canary/"]
    assert _list(emoji, "k8s/default/s-emoji/canary/") == ["2019-05-11"]
    listed = emoji.secrets.kv.v2.list_secrets(path="k8s/default/s-emoji/canary", mount_point="secret")  # LIST verb
    assert listed["data"]["keys"] == ["2019-05-11"]
    with pytest.raises(hvac.exceptions.Forbidden):
        emoji.secrets.kv.v2.list_secrets(path="k8s/default", mount_point="secret")
    meta = emoji.secrets.kv.v2.read_secret_metadata(path="k8s/default/s-emoji/canary/2019-05-11", mount_point="secret")
    assert "versions" in meta["data"]


def test_a_service_cannot_read_or_list_anyone_elses(seeded) -> None:  # noqa: ANN001
    emoji = _login(seeded, "default", "s-emoji")
    for path in ("k8s/default/s-ledger/canary/2019-05-11", "k8s/default/s-ledger/db/password",
                 "k8s/payments/s-emoji/canary/2019-05-11"):
        assert _read(emoji, path) == 403, path
    for path in ("k8s/default/", "k8s/default/s-ledger/", "k8s/", "", "k8s/payments/s-emoji/"):
        assert _list(emoji, path) == 403, path
    with pytest.raises(hvac.exceptions.Forbidden):
        emoji.secrets.kv.v2.read_secret_version(path="k8s/default/s-ledger/db/password", mount_point="secret",
                                                raise_on_deleted_version=True)
    # path tricks never reach another service's secret
    with httpx_client(emoji) as http:
        for trick in ("k8s/default/s-emoji/../s-ledger/db/password", "k8s/default/s-emoji/%2e%2e/s-ledger/db/password",
                      "k8s/default//s-ledger/db/password", "k8s/default/s-emoji/..%2fs-ledger/db/password"):
            r = http.get(f"/v1/secret/data/{trick}")
            assert r.status_code in (400, 403, 404), (trick, r.status_code)
            assert "ledger-db" not in r.text
    ledger = _login(seeded, "default", "s-ledger")
    assert _read(ledger, "k8s/default/s-ledger/db/password") == "ledger-db"
    assert _read(ledger, "k8s/default/s-emoji/canary/2019-05-11") == 403


def test_a_service_cannot_write_anywhere(seeded) -> None:  # noqa: ANN001
    emoji = _login(seeded, "default", "s-emoji")
    with httpx_client(emoji) as http:
        attempts = [
            ("POST", "/v1/secret/data/k8s/default/s-emoji/new/v1", {"data": {"data": "x"}}),
            ("POST", "/v1/secret/data/k8s/default/s-emoji/canary/2019-05-11", {"data": {"data": "swapped"}}),
            ("POST", "/v1/secret/data/k8s/default/s-ledger/db/password", {"data": {"data": "swapped"}}),
            ("DELETE", "/v1/secret/data/k8s/default/s-emoji/canary/2019-05-11", None),
            ("DELETE", "/v1/secret/metadata/k8s/default/s-emoji/canary/2019-05-11", None),
            ("POST", "/v1/secret/destroy/k8s/default/s-emoji/canary/2019-05-11", {"versions": [1]}),
            ("PUT", "/v1/sys/policies/acl/mine", {"policy": 'path "*" { capabilities = ["sudo"] }'}),
            ("POST", "/v1/auth/kubernetes/role/mine", {"bound_service_account_names": ["*"],
                                                       "bound_service_account_namespaces": ["*"],
                                                       "token_policies": ["root"]}),
            ("POST", "/v1/identity/entity", {"name": "me", "policies": ["root"]}),
            ("POST", "/v1/sys/mounts/mine", {"type": "kv"}),
        ]
        for method, url, body in attempts:
            r = http.request(method, url, json=body)
            assert r.status_code == 403, (method, url, r.status_code, r.text)
    # nothing changed
    assert _read(seeded.root, "k8s/default/s-emoji/canary/2019-05-11") == "emoji-canary"
    assert _read(seeded.root, "k8s/default/s-ledger/db/password") == "ledger-db"
    assert _read(seeded.root, "k8s/default/s-emoji/new/v1") == 404


@pytest.mark.parametrize(("namespace", "name"), [
    ("default", "*"),
    ("default", "+"),
    ("default", "s-*"),
    ("default", "s-ledger/db"),   # would template to secret/data/k8s/default/s-ledger/db/*
    ("default/s-ledger", "db"),   # would template to secret/data/k8s/default/s-ledger/db/*
    ("*", "s-ledger"),
    ("+", "s-ledger"),
    ("..", "s-ledger"),
])
def test_odd_names_get_nothing_beyond_a_plain_name(seeded, namespace: str, name: str) -> None:  # noqa: ANN001
    sa = seeded.cluster.service_account(namespace, name)
    with seeded.server.http(token="") as http:
        r = http.post("/v1/auth/kubernetes/login", json={"role": "default", "jwt": seeded.cluster.projected_token(sa)})
    if namespace == "..":  # cannot be a namespace and would bend a path: refused at login
        assert r.status_code == 403
        return
    assert r.status_code == 200, r.text  # logs in like anyone; the templates must not widen what it gets
    odd = seeded.server.client(token=r.json()["auth"]["client_token"])
    for path in SECRETS:
        assert _read(odd, path) == 403, path
    for path in ("", "k8s/", "k8s/default/", "k8s/default/s-ledger/", "k8s/default/s-ledger/db/",
                 "k8s/default/s-emoji/"):
        assert _list(odd, path) == 403, path
