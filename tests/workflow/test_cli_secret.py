"""``strongroom secret`` through its real entry point against live servers (s101 and prod are separate servers)."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import hvac
import pytest

from strongroom.core.system.people_policies import SECRET_WRITER_POLICY

from .cli import base_env, run, spawn, write_config
from .recorder import RecordingProxy

SERVICE_PATH = "k8s/default/s-emoji"


def stored(client: hvac.Client, name: str, version: str, sa: str = "s-emoji", ns: str = "default") -> object:
    resp = client.secrets.kv.v2.read_secret_version(
        path=f"k8s/{ns}/{sa}/{name}/{version}", mount_point="secret", raise_on_deleted_version=True
    )
    return resp["data"]["data"]["data"]


@pytest.fixture
def cli(server, tmp_path: Path):  # noqa: ANN001, ANN201
    """Environment for the CLI: s101 is ``server``; tokens come from STRONGROOM_TOKEN."""
    config = write_config(tmp_path / "config.toml", {"s101": server.addr, "prod": "http://127.0.0.1:9"})
    return base_env(config, STRONGROOM_TOKEN=server.root_token)


def _value_file(tmp_path: Path, content: str) -> Path:
    p = tmp_path / f"value-{secrets.token_hex(4)}"
    p.write_text(content)
    return p


def test_scripted_create_writes_the_value_under_data(server, cli, tmp_path: Path) -> None:  # noqa: ANN001
    value = secrets.token_urlsafe(24)
    f = _value_file(tmp_path, value)
    r = run(["secret", "create", "service.emoji", "--name", "canary", "--version", "2019-05-11", "--from-file", str(f),
             "--yes"], cli)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Secret created at secret/k8s/default/s-emoji/canary/2019-05-11 in s101" in r.stderr
    assert "under the key 'data'" in r.stderr
    assert "SHA256:" in r.stderr  # the transport key's fingerprint is shown
    assert value not in r.stdout + r.stderr
    assert stored(server.client(), "canary", "2019-05-11") == value


def test_existing_version_is_never_overwritten(server, cli, tmp_path: Path) -> None:  # noqa: ANN001
    first, second = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    args = ["secret", "create", "service.emoji", "--name", "db/password", "--version", "v1", "--yes", "--from-file"]
    assert run([*args, str(_value_file(tmp_path, first))], cli).returncode == 0
    r = run([*args, str(_value_file(tmp_path, second))], cli)
    assert r.returncode == 1
    assert "already exists" in r.stderr and "new version" in r.stderr
    assert "Existing versions for db/password in s101: [v1]" in r.stderr
    assert stored(server.client(), "db/password", "v1") == first


def test_trailing_newline_is_trimmed_only_when_asked(server, cli, tmp_path: Path) -> None:  # noqa: ANN001
    value = secrets.token_hex(8)
    base = ["secret", "create", "service.emoji", "--name", "nl", "--yes", "--from-file"]
    assert (
        run([*base, str(_value_file(tmp_path, value + "\n")), "--version", "a", "--trim-newline"], cli).returncode == 0
    )
    assert run([*base, str(_value_file(tmp_path, value + "\n")), "--version", "b"], cli).returncode == 0
    assert stored(server.client(), "nl", "a") == value
    assert stored(server.client(), "nl", "b") == value + "\n"


def test_value_from_stdin_and_default_version_is_today(server, cli) -> None:  # noqa: ANN001
    value = secrets.token_urlsafe(12)
    r = run(["secret", "create", "service.emoji", "--name", "stdin-secret", "--from-file", "-", "--yes"], cli,
            stdin=value.encode())  # fmt: skip
    # a non-interactive run without --version is a usage error: the default needs a person to accept it
    assert r.returncode == 2
    today = dt.datetime.now(dt.UTC).date().isoformat()
    r = run(["secret", "create", "service.emoji", "--name", "stdin-secret", "--version", today, "--from-file", "-",
             "--yes", "--namespace", "payments"], cli, stdin=value.encode())  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert stored(server.client(), "stdin-secret", today, ns="payments") == value


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "../escape", "--version", "v1"],
        ["--name", "ok", "--version", "a/b"],
        ["--name", "ok", "--version", "v1", "--from-file", "/nonexistent/file"],
        ["--version", "v1"],
    ],
)
def test_usage_errors_exit_2_and_write_nothing(server, cli, tmp_path: Path, args: list[str]) -> None:  # noqa: ANN001
    f = _value_file(tmp_path, "x")
    extra = [] if "--from-file" in args else ["--from-file", str(f)]
    r = run(["secret", "create", "service.emoji", *args, *extra, "--yes"], cli)
    assert r.returncode == 2, r.stderr
    with server.http() as http:
        assert http.get(f"/v1/secret/metadata/{SERVICE_PATH}/", params={"list": "true"}).status_code == 404


def test_bad_service_name_is_a_usage_error(cli, tmp_path: Path) -> None:  # noqa: ANN001
    r = run(["secret", "create", "Service.EMOJI!", "--name", "x", "--version", "v", "--yes", "--from-file",
             str(_value_file(tmp_path, "x"))], cli)  # fmt: skip
    assert r.returncode == 2


def test_prod_write_warns_when_staging_lacks_the_secret(server_factory, tmp_path: Path) -> None:  # noqa: ANN001
    staging, prod = server_factory(), server_factory()
    config = write_config(tmp_path / "c.toml", {"s101": staging.addr, "prod": prod.addr})
    env = base_env(config, STRONGROOM_TOKEN=staging.root_token)
    value = secrets.token_urlsafe(16)
    args = ["secret", "create", "service.emoji", "-e", "prod", "--name", "canary", "--yes", "--from-file",
            str(_value_file(tmp_path, value))]  # fmt: skip
    r = run([*args, "--version", "v1"], env)
    assert r.returncode == 0, r.stderr
    assert "canary/v1 does not exist in s101" in r.stderr
    assert stored(prod.client(), "canary", "v1") == value
    # created in staging first: no warning for prod
    s101 = ["secret", "create", "service.emoji", "--name", "canary", "--version", "v2", "--yes", "--from-file",
            str(_value_file(tmp_path, value))]  # fmt: skip
    assert run(s101, env).returncode == 0
    r = run([*args, "--version", "v2"], env)
    assert r.returncode == 0, r.stderr
    assert "does not exist in s101" not in r.stderr
    assert "canary/v2 exists in s101" in r.stderr


def test_value_travels_encrypted_past_a_recording_proxy(server, cli, tmp_path: Path) -> None:  # noqa: ANN001
    value = "pa55-" + secrets.token_hex(20)
    proxy = RecordingProxy(server.port)
    try:
        r = run(["secret", "create", "service.emoji", "--addr", proxy.addr, "--name", "tls/key", "--version", "v1",
                 "--from-file", str(_value_file(tmp_path, value)), "--yes"], cli)  # fmt: skip
        assert r.returncode == 0, r.stderr
        seen = bytes(proxy.recorded)
    finally:
        proxy.close()
    assert b"/v1/secret/data/k8s/default/s-emoji/tls/key/v1" in seen  # the write did go through the proxy
    assert value.encode() not in seen
    assert value.encode().hex().encode() not in seen
    assert stored(server.client(), "tls/key", "v1") == value


def test_plain_writes_still_work_for_other_clients(server) -> None:  # noqa: ANN001
    value = secrets.token_hex(8)
    server.client().secrets.kv.v2.create_or_update_secret(
        path=f"{SERVICE_PATH}/plain/v1", secret={"data": value}, cas=0, mount_point="secret"
    )
    assert stored(server.client(), "plain", "v1") == value


def test_list_and_versions_never_show_values(server, cli, tmp_path: Path) -> None:  # noqa: ANN001
    values = {}
    for name, version in (("canary", "2019-05-10"), ("canary", "2019-05-11"), ("aws/access-key-id", "v1")):
        values[(name, version)] = v = secrets.token_urlsafe(16)
        assert run(["secret", "create", "service.emoji", "--name", name, "--version", version, "--yes", "--from-file",
                    str(_value_file(tmp_path, v))], cli).returncode == 0  # fmt: skip
    r = run(["secret", "list", "service.emoji", "--plain"], cli)
    assert r.returncode == 0, r.stderr
    assert "canary\t2019-05-10, 2019-05-11" in r.stdout
    assert "aws/access-key-id\tv1" in r.stdout
    r2 = run(["secret", "versions", "service.emoji", "canary", "--plain"], cli)
    assert r2.returncode == 0, r2.stderr
    assert [line.split("\t")[0] for line in r2.stdout.splitlines()] == ["2019-05-10", "2019-05-11"]
    r3 = run(["secret", "show", "service.emoji", "canary", "2019-05-11", "--plain"], cli)
    assert r3.returncode == 0 and "value hidden" in r3.stderr
    for v in values.values():
        assert v not in r.stdout + r.stderr + r2.stdout + r2.stderr + r3.stdout + r3.stderr
    r4 = run(["secret", "show", "service.emoji", "canary", "2019-05-11", "--reveal", "--plain"], cli)
    assert r4.returncode == 0 and r4.stdout.strip() == values[("canary", "2019-05-11")]


def test_secret_writer_adds_but_cannot_overwrite_delete_or_read(server, cli, tmp_path: Path) -> None:  # noqa: ANN001
    root = server.client()
    root.sys.create_or_update_acl_policy(name="secret-writer", policy=SECRET_WRITER_POLICY)
    token = root.auth.token.create(policies=["secret-writer"], ttl="10m")["auth"]["client_token"]
    env = {**cli, "STRONGROOM_TOKEN": token}
    value = secrets.token_urlsafe(16)
    args = ["secret", "create", "service.emoji", "--name", "writer", "--yes", "--from-file",
            str(_value_file(tmp_path, value))]  # fmt: skip
    assert run([*args, "--version", "v1"], env).returncode == 0
    assert run([*args, "--version", "v2"], env).returncode == 0  # a new version is fine
    r = run([*args, "--version", "v1"], env)
    assert r.returncode == 1 and "already exists" in r.stderr
    engineer = server.client(token=token)
    with pytest.raises(hvac.exceptions.Forbidden):
        engineer.secrets.kv.v2.create_or_update_secret(
            path=f"{SERVICE_PATH}/writer/v1", secret={"data": "clobbered"}, mount_point="secret"
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        engineer.secrets.kv.v2.delete_metadata_and_all_versions(path=f"{SERVICE_PATH}/writer/v1", mount_point="secret")
    with pytest.raises(hvac.exceptions.Forbidden):
        engineer.secrets.kv.v2.read_secret_version(
            path=f"{SERVICE_PATH}/writer/v1", mount_point="secret", raise_on_deleted_version=True
        )
    r = run(["secret", "show", "service.emoji", "writer", "v1", "--reveal"], env)
    assert r.returncode == 3 and "do not allow reading" in r.stderr and value not in r.stdout
    assert run(["secret", "list", "service.emoji", "--plain"], env).stdout.strip() == "writer\tv1, v2"
    assert stored(root, "writer", "v1") == value


def test_interactive_create_on_a_terminal(server, cli) -> None:  # noqa: ANN001
    value = secrets.token_urlsafe(20)
    env = {k: v for k, v in cli.items() if k != "NO_COLOR"} | {"TERM": "xterm-256color", "COLUMNS": "200"}
    t = spawn(["secret", "create", "service.emoji"], env)
    t.expect("Authenticating against s101")
    t.expect("Please enter a descriptive name")
    t.send("bad name!")
    t.expect("invalid secret name")
    t.send("canary")
    t.expect("Version identifier")
    t.send("2019-05-11")
    t.expect("Your secret will be at path secret/k8s/default/s-emoji/canary/2019-05-11 under the key 'data'")
    t.expect("Existing versions for canary in s101: []")
    t.expect("Confirm when ready to paste secret")
    t.send("y")
    t.expect("Secret value")
    t.send(value)
    t.expect("Write secret/k8s/default/s-emoji/canary/2019-05-11 to environment s101?")
    t.send("y")
    t.expect("Secret created at secret/k8s/default/s-emoji/canary/2019-05-11 in s101")
    assert t.wait() == 0
    assert value not in t.transcript  # the hidden prompt never echoed it
    for emoji in ("🔑", "🔍", "👉", "🆕"):
        assert emoji in t.transcript
    assert stored(server.client(), "canary", "2019-05-11") == value


def test_interactive_prod_write_asks_about_staging_and_trimming(server_factory, tmp_path: Path) -> None:  # noqa: ANN001
    staging, prod = server_factory(), server_factory()
    config = write_config(tmp_path / "c.toml", {"s101": staging.addr, "prod": prod.addr})
    env = base_env(config, STRONGROOM_TOKEN=staging.root_token) | {"TERM": "xterm-256color", "COLUMNS": "200"}
    env.pop("NO_COLOR")
    value = secrets.token_urlsafe(16)
    f = _value_file(tmp_path, value + "\n")
    t = spawn(["secret", "create", "service.emoji", "-e", "prod", "--name", "canary", "--version", "v9",
               "--from-file", str(f)], env)  # fmt: skip
    t.expect("canary/v9 does not exist in s101")
    t.expect("Write to prod anyway?")
    t.send("y")
    t.expect("Do you want to trim the trailing newline in your file?")
    t.send("y")
    t.expect("Write secret/k8s/default/s-emoji/canary/v9 to environment prod?")
    t.send("y")
    t.expect("Secret created at secret/k8s/default/s-emoji/canary/v9 in prod")
    assert t.wait() == 0
    assert stored(prod.client(), "canary", "v9") == value
    # saying no to the staging warning writes nothing
    t = spawn(["secret", "create", "service.emoji", "-e", "prod", "--name", "canary", "--version", "v10",
               "--from-file", str(f)], env)  # fmt: skip
    t.expect("Write to prod anyway?")
    t.send("n")
    assert t.wait() == 2
    with prod.http() as http:
        assert http.get("/v1/secret/data/k8s/default/s-emoji/canary/v10").status_code == 404


def test_pinned_transport_fingerprint_refuses_a_swapped_key(server, tmp_path: Path) -> None:  # noqa: ANN001
    with server.http() as http:
        real = http.get("/v1/sys/transport/key").json()["data"]["fingerprint"]
    f = _value_file(tmp_path, secrets.token_hex(8))
    args = ["secret", "create", "service.emoji", "--name", "pinned", "--from-file", str(f), "--yes"]
    for pins, version, code in ((["SHA256:not-the-servers-key"], "v1", 3), (["SHA256:old", real], "v2", 0)):
        config = tmp_path / f"pin-{version}.toml"
        quoted = ", ".join(f'"{p}"' for p in pins)
        config.write_text(f'[environments.s101]\naddress = "{server.addr}"\nlogin = "token"\n'
                          f"transport_fingerprints = [{quoted}]\n")  # fmt: skip
        r = run([*args, "--version", version], base_env(config, STRONGROOM_TOKEN=server.root_token))
        assert r.returncode == code, r.stderr
    assert (
        "not one of the fingerprints pinned"
        in run(
            [*args, "--version", "v3"], base_env(tmp_path / "pin-v1.toml", STRONGROOM_TOKEN=server.root_token)
        ).stderr
    )
    with server.http() as http:
        assert http.get("/v1/secret/data/k8s/default/s-emoji/pinned/v1").status_code == 404
        assert http.get("/v1/secret/data/k8s/default/s-emoji/pinned/v2").status_code == 200
