"""The library's own logic (claims, paths, retries, re-login, error messages) against scripted HTTP answers.

The end-to-end behaviour against a real server is in ``test_secretstore_live.py``; these cases pin down timing-sensitive
paths (transient failures, expired tokens) that a live server cannot produce on demand.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from strongroom import secretstore
from strongroom.secretstore.identity import claims_identity

from .pod import legacy_token, make_pod, projected_token

VALUE = "hunter2-very-secret"


def test_claims_of_both_token_shapes() -> None:
    assert claims_identity(projected_token("payments", "s-ledger")) == ("payments", "s-ledger")
    assert claims_identity(legacy_token("default", "s-emoji")) == ("default", "s-emoji")


def test_not_a_jwt_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("not-a-jwt")
    c = secretstore.Client(
        addr="http://127.0.0.1:9", token_file=str(tmp_path / "token"), namespace_file=str(tmp_path / "ns")
    )
    with pytest.raises(secretstore.ConfigurationError):
        c.path("canary", "2019-05-11").string()


def test_missing_token_file_names_the_file(tmp_path: Path) -> None:
    c = secretstore.Client(addr="http://127.0.0.1:9", token_file=str(tmp_path / "nope"))
    with pytest.raises(secretstore.ConfigurationError, match="nope"):
        c.token()


@pytest.mark.parametrize("bad", ["", "../x", "a//b", "a/../b", "/abs", "a b", "a/."])
def test_bad_names_are_refused_before_any_request(tmp_path: Path, bad: str) -> None:
    pod = make_pod(tmp_path, "default", "s-emoji")
    c = secretstore.Client(**_settings(pod))
    with pytest.raises(ValueError):
        c.path(bad, "2019-05-11").string()


def _settings(pod: object) -> dict[str, object]:
    return {
        "addr": "http://strongroom.test",
        "token_file": str(pod.token_file),  # type: ignore[attr-defined]
        "namespace_file": str(pod.namespace_file),  # type: ignore[attr-defined]
        "backoff_base": 0.001,
        "backoff_cap": 0.01,
    }


class Script:
    """Answers requests from a list of (path, status, body), records what it saw."""

    def __init__(self, answers: list[tuple[str, int, object]]) -> None:
        self.answers = answers
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path, status, body = self.answers.pop(0)
        assert request.url.path == "/v1/" + path, request.url.path
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, json=body)


def _login(ttl: int = 3600) -> tuple[str, int, object]:
    return (
        "auth/kubernetes/login",
        200,
        {"auth": {"client_token": "hvs.TOKEN", "lease_duration": ttl, "renewable": True}},
    )


def _secret() -> tuple[str, int, object]:
    return (
        "secret/data/k8s/default/s-emoji/canary/2019-05-11",
        200,
        {"data": {"data": {"data": VALUE}, "metadata": {"version": 1}}},
    )


def _client(tmp_path: Path, script: Script) -> secretstore.Client:
    pod = make_pod(tmp_path, "default", "s-emoji")
    http = httpx.Client(base_url="http://strongroom.test/v1/", transport=httpx.MockTransport(script))
    return secretstore.Client(http=http, **_settings(pod))


def test_reads_its_own_path_after_logging_in(tmp_path: Path) -> None:
    script = Script([_login(), _secret(), _secret()])
    c = _client(tmp_path, script)
    assert c.path("canary", "2019-05-11").string() == VALUE
    assert c.path("canary", "2019-05-11").bytes() == VALUE.encode()
    # one login, then the cached token is reused
    assert [r.url.path for r in script.seen].count("/v1/auth/kubernetes/login") == 1
    assert script.seen[1].headers["X-Vault-Token"] == "hvs.TOKEN"
    assert c.path("canary", "2019-05-11").path == "secret/k8s/default/s-emoji/canary/2019-05-11"


def test_transient_failures_are_retried(tmp_path: Path) -> None:
    script = Script(
        [
            ("auth/kubernetes/login", 503, {"errors": ["Vault is sealed"]}),
            ("auth/kubernetes/login", 0, httpx.ConnectError("refused")),
            _login(),
            ("secret/data/k8s/default/s-emoji/canary/2019-05-11", 500, {"errors": ["internal error"]}),
            _secret(),
        ]
    )
    assert _client(tmp_path, script).path("canary", "2019-05-11").string() == VALUE
    assert not script.answers


def test_gives_up_with_unavailable_naming_the_path(tmp_path: Path) -> None:
    script = Script([_login()] + [("secret/data/k8s/default/s-emoji/canary/2019-05-11", 503, {"errors": []})] * 6)
    with pytest.raises(secretstore.Unavailable, match="secret/k8s/default/s-emoji/canary/2019-05-11"):
        _client(tmp_path, script).path("canary", "2019-05-11").string()


def test_expired_token_logs_in_again(tmp_path: Path) -> None:
    script = Script(
        [_login(), _secret(), ("secret/data/k8s/default/s-emoji/canary/2019-05-11", 403, {}), _login(), _secret()]
    )
    c = _client(tmp_path, script)
    c.path("canary", "2019-05-11").string()
    assert c.path("canary", "2019-05-11").string() == VALUE
    assert not script.answers


def test_token_is_renewed_near_expiry(tmp_path: Path) -> None:
    script = Script(
        [
            _login(ttl=0),
            _secret(),
        ]
    )
    c = _client(tmp_path, script)
    c.path("canary", "2019-05-11").string()
    # pretend the token is 90% through its life
    cached = c._engine._token
    assert cached is not None
    cached.ttl, cached.obtained = 1000, cached.obtained - 900
    script.answers += [("auth/token/renew-self", 200, {"auth": {"lease_duration": 1000, "renewable": True}}), _secret()]
    assert c.path("canary", "2019-05-11").string() == VALUE
    assert [r.url.path for r in script.seen][-2] == "/v1/auth/token/renew-self"


def test_errors_are_typed_and_never_carry_the_value(tmp_path: Path) -> None:
    path = "secret/data/k8s/default/s-emoji/canary/2019-05-11"
    script = Script([_login(), (path, 404, {"errors": []})])
    with pytest.raises(secretstore.SecretNotFound) as nf:
        _client(tmp_path, script).path("canary", "2019-05-11").string()
    assert "secret/k8s/default/s-emoji/canary/2019-05-11" in str(nf.value)
    script = Script([_login(), (path, 403, {"errors": ["permission denied"]}), _login(), (path, 403, {})])
    with pytest.raises(secretstore.PermissionDenied):
        _client(tmp_path / "b", script).path("canary", "2019-05-11").string()
    script = Script([_login(), (path, 200, {"data": {"data": {"data": VALUE + "{"}}})])
    with pytest.raises(secretstore.SecretStoreError) as bad:
        _client(tmp_path / "c", script).path("canary", "2019-05-11").json()
    assert VALUE not in str(bad.value)


def test_login_refused_is_permission_denied(tmp_path: Path) -> None:
    script = Script([("auth/kubernetes/login", 403, {"errors": ["permission denied"]})])
    with pytest.raises(secretstore.PermissionDenied, match="kubernetes login refused"):
        _client(tmp_path, script).path("canary", "2019-05-11").string()


async def test_async_api_reads_and_retries(tmp_path: Path) -> None:
    pod = make_pod(tmp_path, "default", "s-emoji")
    script = Script([_login(), ("secret/data/k8s/default/s-emoji/canary/2019-05-11", 502, {}), _secret()])
    http = httpx.AsyncClient(base_url="http://strongroom.test/v1/", transport=httpx.MockTransport(script))
    async with secretstore.aio.AsyncClient(http=http, **_settings(pod)) as c:
        assert await c.path("canary", "2019-05-11").string() == VALUE


def test_settings_from_environment() -> None:
    s = secretstore.Settings.from_env({"VAULT_ADDR": "https://v:8200/", "STRONGROOM_K8S_ROLE": "r"})
    assert (s.addr, s.role, s.auth_mount) == ("https://v:8200", "r", "kubernetes")
    s = secretstore.Settings.from_env({"VAULT_ADDR": "https://v", "STRONGROOM_ADDR": "https://s"})
    assert s.addr == "https://s"
    assert s.token_file == "/var/run/secrets/kubernetes.io/serviceaccount/token"
