"""The CLI's naming rule and environment configuration, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.cli import environments as envs
from strongroom.cli.service_names import resolve, service_account_for

MAPPING = [("service.emoji", "s-emoji"), ("service.ledger-api", "s-ledger-api"), ("s-emoji", "s-emoji"),
           ("cron.cleanup", "c-cleanup")]  # fmt: skip


@pytest.mark.parametrize(("service", "account"), MAPPING)
def test_service_names_map_to_service_accounts(service: str, account: str) -> None:
    assert service_account_for(service) == account


@pytest.mark.parametrize("bad", ["service.", "service.Emoji", "service.a/b", "thing.emoji", "service.*", "-x", ""])
def test_bad_service_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        service_account_for(bad)


def test_namespace_defaults_and_is_validated() -> None:
    assert resolve("service.emoji").secret_root == "secret/k8s/default/s-emoji"
    assert resolve("service.emoji", "payments").secret_root == "secret/k8s/payments/s-emoji"
    with pytest.raises(ValueError):
        resolve("service.emoji", "../sys")


def test_config_location_flag_then_env_then_user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGROOM_CONFIG", raising=False)
    assert envs.config_path(None).name == "config.toml" and "strongroom" in str(envs.config_path(None))
    monkeypatch.setenv("STRONGROOM_CONFIG", str(tmp_path / "env.toml"))
    assert envs.config_path(None) == tmp_path / "env.toml"
    assert envs.config_path(str(tmp_path / "flag.toml")) == tmp_path / "flag.toml"


def test_defaults_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGROOM_ADDR", raising=False)
    monkeypatch.delenv("STRONGROOM_TOKEN", raising=False)
    loaded = envs.load(tmp_path / "missing.toml")
    assert set(loaded) == {"s101", "prod"} and loaded["prod"].is_production
    cfg = tmp_path / "c.toml"
    cfg.write_text('[environments.s101]\naddress = "https://s101.example:8200/"\nca_cert = "/ca.pem"\nlogin = "jwt"\n'
                   '[environments.dev]\naddress = "http://127.0.0.1:8200"\nlogin = "token"\n')  # fmt: skip
    loaded = envs.load(cfg)
    assert loaded["s101"].address == "https://s101.example:8200" and loaded["s101"].ca_cert == "/ca.pem"
    assert set(loaded) == {"s101", "prod", "dev"}
    chosen = envs.select(loaded, "s101", addr="http://127.0.0.1:1", token="t")
    assert (chosen.address, chosen.login, chosen.token) == ("http://127.0.0.1:1", "token", "t")
    monkeypatch.setenv("STRONGROOM_ADDR", "http://from-env:1")
    assert envs.select(loaded, "s101").address == "http://from-env:1"
    with pytest.raises(envs.UsageError, match="unknown environment"):
        envs.select(loaded, "staging")


@pytest.mark.parametrize(
    "text", ['[environments.s101]\nlogin = "magic"\n', '[environments.s101]\ntoken = "hvs.x"\n', "not toml ["]
)
def test_bad_config_is_a_usage_error(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(envs.UsageError):
        envs.load(cfg)
