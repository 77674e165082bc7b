"""IAM unreachable when an IAM user's lease expires: the revocation fails, the lease stays (and is retried with the
expiration manager's backoff), and once IAM answers again the user is deleted and the lease removed.

moto stands in for AWS; the outage is a TCP proxy in front of it that stops listening and cuts its connections
(moto keeps its state in memory, so stopping moto itself would lose the user we want to see deleted).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from tests.aws.conftest import MotoAWS
from tests.aws.tcp_proxy import TCPProxy
from tests.conftest import StrongroomServer, wait_for

LIST_BUCKETS = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
)


def test_revocation_is_retried_until_iam_deletes_the_user(aws_server: StrongroomServer, moto: MotoAWS) -> None:
    proxy = TCPProxy(int(moto.url.rsplit(":", 1)[1])).start()
    try:
        with aws_server.http() as http:
            assert http.post("/v1/sys/mounts/aws-outage", json={"type": "aws"}).status_code == 204
            config = moto.engine_config(iam_endpoint=proxy.url)
            assert http.post("/v1/aws-outage/config/root", json=config).status_code == 204
            assert http.post("/v1/aws-outage/config/lease", json={"lease": "4s", "lease_max": "4s"}).status_code == 204
            role = {"credential_type": "iam_user", "policy_document": LIST_BUCKETS}
            assert http.post("/v1/aws-outage/roles/short", json=role).status_code == 204
            body = http.get("/v1/aws-outage/creds/short").json()
            lease_id = body["lease_id"]
            user = moto.client("sts", body["data"]["access_key"], body["data"]["secret_key"]).get_caller_identity()[
                "Arn"].rsplit("/", 1)[1]  # fmt: skip

            proxy.stop()

            def lookup() -> dict:
                resp = http.put("/v1/sys/leases/lookup", json={"lease_id": lease_id})
                assert resp.status_code == 200, resp.text
                return resp.json()["data"]

            # the lease expires during the outage: the revocation fails and the lease is kept for another try
            wait_for(lambda: lookup()["ttl"] <= 0, timeout=30, message="lease expiry")
            wait_for(lambda: "error deleting IAM user" in aws_server.log_path.read_text(errors="replace"),
                     timeout=30, message="a failed revocation attempt")  # fmt: skip
            assert lookup()["id"] == lease_id
            assert moto.user_exists(user)

            proxy = TCPProxy(proxy.target_port, port=proxy.port).start()
            # nothing leaked: a retry deletes the user, its key and policy, then the lease
            wait_for(lambda: not moto.user_exists(user), timeout=90, interval=0.5, message="retried revocation")
            wait_for(lambda: http.put("/v1/sys/leases/lookup", json={"lease_id": lease_id}).status_code == 400,
                     timeout=30, message="lease removal")  # fmt: skip
            log = aws_server.log_path.read_text(errors="replace")
            assert lease_id in log and body["data"]["secret_key"] not in log
    finally:
        proxy.stop()


def test_a_crash_mid_creation_leaves_no_iam_user(server_factory, moto: MotoAWS) -> None:  # noqa: ANN001
    # moto answers CreateUser, then the proxy holds every later call, and the server is killed while the request
    # waits: no lease was ever recorded, so only the write-ahead entry can get the user deleted
    server = server_factory(env={"STRONGROOM_AWS_ROLLBACK_MIN_AGE": "2", "STRONGROOM_AWS_ROLLBACK_CHECK": "0.5"})
    proxy = TCPProxy(int(moto.url.rsplit(":", 1)[1])).start()
    try:
        with server.http() as http:
            assert http.post("/v1/sys/mounts/aws", json={"type": "aws"}).status_code == 204
            assert http.post("/v1/aws/config/root", json=moto.engine_config(iam_endpoint=proxy.url)).status_code == 204
            role = {"credential_type": "iam_user", "policy_document": LIST_BUCKETS}
            assert http.post("/v1/aws/roles/crash", json=role).status_code == 204
            proxy.hold_after = b"Action=CreateUser"
            with pytest.raises(httpx.TimeoutException):
                http.get("/v1/aws/creds/crash", timeout=3)
        assert proxy.holding.is_set()
        bodies = [b.split(b"POST ", 1)[0] for b in bytes(proxy.sent).split(b"\r\n\r\n")[1:]]
        user = next(parse_qs(b.decode())["UserName"][0] for b in bodies if b"Action=CreateUser" in b)
        assert moto.user_exists(user)

        server.stop(kill=True)
        proxy.stop()
        proxy = TCPProxy(proxy.target_port, port=proxy.port).start()
        server.start()

        wait_for(lambda: not moto.user_exists(user), timeout=60, interval=0.5, message="rollback of the IAM user")
        assert f"rolled back IAM user {user}" in server.log_path.read_text(errors="replace")
        with server.http() as http:
            assert http.request("LIST", "/v1/sys/leases/lookup/aws/creds/crash").status_code == 404
    finally:
        proxy.stop()
