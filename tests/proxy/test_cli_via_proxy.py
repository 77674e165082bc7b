"""An engineer's everyday path: ``strongroom secret create`` with the company IdP token, through the staff proxy."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from .conftest import Staff
from .staff import AUDIENCE, ISSUER, STRONGROOM


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STRONGROOM, *args], input="", env=env, capture_output=True, text=True, timeout=60)


def test_create_and_list_through_the_proxy_with_the_idp_token(staff: Staff, tmp_path: Path) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(f'[environments.s101]\naddress = "{staff.proxy.addr}"\nlogin = "proxy"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRONGROOM_", "VAULT_"))}
    env |= {"STRONGROOM_CONFIG": str(config), "STRONGROOM_IDP_TOKEN": staff.idp.token("dave")}
    value = secrets.token_urlsafe(20)
    f = tmp_path / "v"
    f.write_text(value)
    r = _run(["secret", "create", "service.emoji", "--name", "canary", "--version", "2019-05-11", "--from-file",
              str(f), "--yes", "--plain"], env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Secret created at secret/k8s/default/s-emoji/canary/2019-05-11 in s101" in r.stderr
    r = _run(["secret", "create", "service.emoji", "--name", "canary", "--version", "2019-05-11", "--from-file",
              str(f), "--yes", "--plain"], env)  # fmt: skip
    assert r.returncode == 1 and "already exists" in r.stderr
    listing = _run(["secret", "list", "service.emoji", "--plain"], env)
    assert listing.stdout.strip() == "canary\t2019-05-11"
    stored = staff.root.secrets.kv.v2.read_secret_version(
        path="k8s/default/s-emoji/canary/2019-05-11", mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"]["data"] == value
    target = "secret/data/k8s/default/s-emoji/canary/2019-05-11"
    requests = [e for e in staff.audit_entries() if e.get("type") == "request"]
    writes = [e for e in requests if e["request"].get("path") == target and e["request"].get("operation") == "create"]
    assert writes and all(e["auth"]["metadata"]["staff_user"] == "dave" for e in writes)
    # without the IdP token the CLI gets nowhere
    env.pop("STRONGROOM_IDP_TOKEN")
    r = _run(["secret", "list", "service.emoji", "--plain"], env)
    assert r.returncode == 2 and "STRONGROOM_IDP_TOKEN" in r.stderr


def test_direct_staff_login_with_the_jwt_method(staff: Staff, tmp_path: Path) -> None:
    """``login = "jwt"``: the CLI exchanges the IdP token at auth/jwt/login for a token of the person's own."""
    root = staff.root
    root.sys.enable_auth_method("jwt", path="jwt")
    with staff.server.http() as http:
        r = http.post("/v1/auth/jwt/config", json={"jwks_url": staff.idp.jwks_url, "bound_issuer": ISSUER})
        assert r.status_code in (200, 204), r.text
        r = http.post("/v1/auth/jwt/role/engineer", json={
            "role_type": "jwt", "bound_audiences": [AUDIENCE], "user_claim": "sub", "token_policies": ["secret-writer"],
            "token_ttl": "10m"})  # fmt: skip
        assert r.status_code in (200, 204), r.text
    config = tmp_path / "cli.toml"
    config.write_text(f'[environments.s101]\naddress = "{staff.server.addr}"\nlogin = "jwt"\njwt_role = "engineer"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRONGROOM_", "VAULT_"))}
    env |= {"STRONGROOM_CONFIG": str(config), "STRONGROOM_IDP_TOKEN": staff.idp.token("erin")}
    f = tmp_path / "v"
    f.write_text(secrets.token_urlsafe(8))
    r = _run(["secret", "create", "service.emoji", "--name", "jwt-made", "--version", "v1", "--from-file", str(f),
              "--yes", "--plain"], env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    env["STRONGROOM_IDP_TOKEN"] = staff.idp.token("erin", ttl=-300)
    r = _run(["secret", "list", "service.emoji", "--plain"], env)
    assert r.returncode == 3 and "login to s101 failed" in r.stderr
