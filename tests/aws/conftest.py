"""An AWS API for the aws engine's tests: moto, run as a standalone HTTP server (``moto_server``).

moto stands in for AWS (IAM and STS): it keeps users, keys, roles and policies in memory and, because
``INITIAL_NO_AUTH_ACTION_COUNT`` is set in its environment, checks every request's signature and evaluates the
caller's IAM policies (user inline, attached and group policies; an assumed role's own policies), refusing what they
do not allow with ``AccessDenied``. It is started once per test run on a free loopback port, unless
``STRONGROOM_TEST_MOTO=http://host:port`` names one already running. The first three actions are unauthenticated
(the count is reset through moto's ``/moto-api/reset-auth``): they create the engine's own IAM user, its
administrator policy and its access key; everything after is authenticated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import StrongroomServer, free_port, wait_for

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ADMIN_POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
_SETUP_ACTIONS = 3


@dataclass
class MotoAWS:
    url: str
    engine_user: str
    access_key: str
    secret_key: str

    def client(self, service: str, access_key: str | None = None, secret_key: str | None = None,
               session_token: str | None = None, url: str | None = None) -> Any:  # fmt: skip
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=url or self.url,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            aws_session_token=session_token,
            config=Config(retries={"total_max_attempts": 1}),
        )

    def user_exists(self, name: str) -> bool:
        iam = self.client("iam")
        try:
            iam.get_user(UserName=name)
            return True
        except iam.exceptions.NoSuchEntityException:
            return False

    def engine_config(self, **extra: Any) -> dict[str, Any]:
        return {"access_key": self.access_key, "secret_key": self.secret_key, "region": REGION,
                "iam_endpoint": self.url, "sts_endpoint": self.url, "max_retries": 0, **extra}  # fmt: skip


def _moto_server() -> str:
    return shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoAWS]:
    given = os.environ.get("STRONGROOM_TEST_MOTO")
    proc: subprocess.Popen[bytes] | None = None
    log_file = None
    if given:
        url = given.rstrip("/")
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_file = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)  # noqa: SIM115
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_ACTIONS)}
        proc = subprocess.Popen([_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log_file, stderr=subprocess.STDOUT, env=env)  # fmt: skip

        def up() -> bool:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {Path(log_file.name).read_text(errors='replace')}")
            try:
                return httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, message=f"moto_server on {url}")
    try:
        resp = httpx.post(f"{url}/moto-api/reset-auth", content=str(_SETUP_ACTIONS), timeout=10)
        assert resp.status_code == 200, resp.text
        aws = MotoAWS(url, "strongroom-engine", "", "")
        iam = aws.client("iam", "AKIAUNAUTHENTICATED0", "unauthenticated")
        iam.create_user(UserName=aws.engine_user)
        iam.put_user_policy(UserName=aws.engine_user, PolicyName="admin", PolicyDocument=ADMIN_POLICY)
        key = iam.create_access_key(UserName=aws.engine_user)["AccessKey"]
        aws.access_key, aws.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        # from here on moto checks signatures and policies: an unknown key is refused
        with pytest.raises(Exception, match="InvalidClientTokenId|not valid|security token"):
            aws.client("iam", "AKIAUNAUTHENTICATED0", "unauthenticated").list_users()
        yield aws
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_file is not None:
            log_file.close()
            os.unlink(log_file.name)


@pytest.fixture(scope="module")
def aws_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    """One Strongroom dev server per test module, with the aws engine mounted at ``aws/``."""
    srv = StrongroomServer(tmp_path_factory.mktemp("aws-server")).start()
    try:
        resp = srv.http().post("/v1/sys/mounts/aws", json={"type": "aws"})
        assert resp.status_code == 204, resp.text
        yield srv
    finally:
        srv.stop()
