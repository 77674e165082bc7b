"""The aws engine against moto, which stands in for AWS (IAM and STS) and enforces IAM policies (see conftest).

Credentials issued by Strongroom are used with boto3 exactly as a service would use them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import ACCOUNT, ADMIN_POLICY, MotoAWS
from tests.aws.tcp_proxy import TCPProxy
from tests.conftest import StrongroomServer

LIST_BUCKETS = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
)
TRUST_ENGINE = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/strongroom-engine"},
    "Action": "sts:AssumeRole"}]})  # fmt: skip


def check(resp: httpx.Response, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else {}


def refused(call) -> str:  # noqa: ANN001
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def sts_wire(moto: MotoAWS) -> Iterator[TCPProxy]:
    """STS calls go through a proxy that records them: moto does not evaluate session policies."""
    proxy = TCPProxy(int(moto.url.rsplit(":", 1)[1])).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def http(aws_server: StrongroomServer, moto: MotoAWS, sts_wire: TCPProxy) -> Iterator[httpx.Client]:
    with aws_server.http() as h:
        check(h.post("/v1/aws/config/root", json=moto.engine_config(sts_endpoint=sts_wire.url)), 204)
        yield h


def test_config_root_never_returns_the_secret_key(http: httpx.Client, moto: MotoAWS) -> None:
    data = check(http.get("/v1/aws/config/root"))["data"]
    assert data["access_key"] == moto.access_key and data["iam_endpoint"] == moto.url
    assert "secret_key" not in data and moto.secret_key not in json.dumps(data)
    # a partial update keeps the rest, the secret key included
    check(http.post("/v1/aws/config/root", json={"max_retries": 1}), 204)
    assert check(http.get("/v1/aws/config/root"))["data"]["max_retries"] == 1
    check(http.post("/v1/aws/config/root", json={"max_retries": 0}), 204)


def test_iam_user_can_call_what_its_policy_allows_and_revoke_deletes_everything(
    http: httpx.Client, moto: MotoAWS
) -> None:
    admin = moto.client("iam")
    admin.create_group(GroupName="readers")
    managed = admin.create_policy(PolicyName="list-queues", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:ListQueues", "Resource": "*"}]}))["Policy"]["Arn"]  # fmt: skip
    check(http.post("/v1/aws/config/lease", json={"lease": "1h", "lease_max": "2h"}), 204)
    assert check(http.get("/v1/aws/config/lease"))["data"] == {"lease": "1h0m0s", "lease_max": "2h0m0s"}
    check(http.post("/v1/aws/roles/lister", json={
        "credential_type": "iam_user", "policy_document": LIST_BUCKETS, "policy_arns": [managed],
        "iam_groups": "readers", "iam_tags": ["team=payments"]}), 204)  # fmt: skip
    role = check(http.get("/v1/aws/roles/lister"))["data"]
    assert role["credential_type"] == "iam_user" and role["iam_tags"] == {"team": "payments"}
    assert "lister" in check(http.request("LIST", "/v1/aws/roles"))["data"]["keys"]

    body = check(http.get("/v1/aws/creds/lister"))
    assert body["renewable"] is True and body["lease_duration"] == 3600
    key, secret = body["data"]["access_key"], body["data"]["secret_key"]
    assert body["data"]["session_token"] is None

    s3 = moto.client("s3", key, secret)
    assert "Buckets" in s3.list_buckets()
    moto.client("sqs", key, secret).list_queues()
    assert refused(lambda: moto.client("iam", key, secret).list_users()) == "AccessDenied"
    assert refused(lambda: s3.create_bucket(Bucket="not-allowed")) == "AccessDenied"

    # the user carries who asked for it: its name and a tag name the token's display name
    user = moto.client("sts", key, secret).get_caller_identity()["Arn"].rsplit("/", 1)[1]
    assert user.startswith("vault-root-lister-")
    tags = {t["Key"]: t["Value"] for t in admin.list_user_tags(UserName=user)["Tags"]}
    assert tags["team"] == "payments" and tags["strongroom-requested-by"] == "root"
    assert [g["GroupName"] for g in admin.list_groups_for_user(UserName=user)["Groups"]] == ["readers"]

    renewed = check(http.put("/v1/sys/leases/renew", json={"lease_id": body["lease_id"], "increment": 600}))
    assert renewed["lease_duration"] == 600

    check(http.put("/v1/sys/leases/revoke", json={"lease_id": body["lease_id"]}), 204)
    assert not moto.user_exists(user)
    assert refused(lambda: moto.client("s3", key, secret).list_buckets()) in ("InvalidAccessKeyId", "AccessDenied")
    assert http.put("/v1/sys/leases/lookup", json={"lease_id": body["lease_id"]}).status_code == 400


def test_assumed_role_returns_session_credentials_with_the_session_policy(
    http: httpx.Client, moto: MotoAWS, sts_wire: TCPProxy
) -> None:
    admin = moto.client("iam")
    arn = admin.create_role(RoleName="app-role", AssumeRolePolicyDocument=TRUST_ENGINE)["Role"]["Arn"]
    admin.put_role_policy(RoleName="app-role", PolicyName="lister", PolicyDocument=LIST_BUCKETS)
    session_policy = {"Version": "2012-10-17",
                      "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}  # fmt: skip
    check(http.post("/v1/aws/roles/assume", json={
        "credential_type": "assumed_role", "role_arns": [arn], "policy_document": json.dumps(session_policy),
        "session_tags": {"service": "s-emoji"}, "default_sts_ttl": "15m", "max_sts_ttl": "1h"}), 204)  # fmt: skip

    body = check(http.get("/v1/aws/sts/assume"))
    data = body["data"]
    assert body["renewable"] is False and 890 <= body["lease_duration"] <= 900
    assert data["session_token"] and data["arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/app-role/")
    sts = moto.client("sts", data["access_key"], data["secret_key"], data["session_token"])
    assert sts.get_caller_identity()["Arn"] == data["arn"]
    assert "Buckets" in moto.client("s3", data["access_key"], data["secret_key"], data["session_token"]).list_buckets()
    iam = moto.client("iam", data["access_key"], data["secret_key"], data["session_token"])
    assert refused(iam.list_users) == "AccessDenied"

    # moto does not evaluate session policies, so check on the wire that AssumeRole carried the role's session
    # policy and tags
    assume = _sts_calls(sts_wire, "AssumeRole")
    assert len(assume) == 1 and json.loads(assume[0]["Policy"][0]) == session_policy
    assert assume[0]["Tags.member.1.Key"] == ["service"] and assume[0]["Tags.member.1.Value"] == ["s-emoji"]
    assert assume[0]["RoleArn"] == [arn] and assume[0]["DurationSeconds"] == ["900"]

    # a ttl above max_sts_ttl is capped; a role_arn not on the role is refused
    longer = check(http.post("/v1/aws/sts/assume", json={"ttl": "5h"}))
    assert longer["lease_duration"] <= 3600
    resp = http.post("/v1/aws/sts/assume", json={"role_arn": f"arn:aws:iam::{ACCOUNT}:role/other"})
    assert resp.status_code == 400 and "not in allowed role arns" in resp.json()["errors"][0]


def _sts_calls(wire: TCPProxy, action: str) -> list[dict[str, list[str]]]:
    calls = [parse_qs(part.split(b"\r\n\r\n", 1)[1].decode()) for part in bytes(wire.sent).split(b"POST ")[1:]]
    return [c for c in calls if c.get("Action") == [action]]


def test_federation_and_session_tokens(http: httpx.Client, sts_wire: TCPProxy) -> None:
    # moto issues these but does not accept them for signing, so what is checked is the answer and the request
    check(http.post("/v1/aws/roles/fed", json={"credential_type": "federation_token", "policy_document": LIST_BUCKETS}),
          204)  # fmt: skip
    body = check(http.post("/v1/aws/sts/fed", json={"ttl": "20m"}))
    assert body["data"]["session_token"] and 1190 <= body["data"]["ttl"] <= 1200 and body["renewable"] is False
    fed = _sts_calls(sts_wire, "GetFederationToken")
    assert len(fed) == 1 and json.loads(fed[0]["Policy"][0]) == json.loads(LIST_BUCKETS)
    assert fed[0]["Name"][0].startswith("vault-") and len(fed[0]["Name"][0]) <= 32
    # without a policy a federation token would carry the engine's own rights: refused
    check(http.post("/v1/aws/roles/fed-open", json={"credential_type": "federation_token"}), 204)
    resp = http.get("/v1/aws/sts/fed-open")
    assert resp.status_code == 400 and "policy_arns or policy_document" in resp.json()["errors"][0]

    check(http.post("/v1/aws/roles/session", json={"credential_type": "session_token", "default_sts_ttl": "30m"}), 204)
    body = check(http.get("/v1/aws/sts/session"))
    assert body["renewable"] is False and body["data"]["session_token"] and body["data"]["access_key"]
    assert _sts_calls(sts_wire, "GetSessionToken")[-1]["DurationSeconds"] == ["1800"]
    # an STS lease cannot be renewed; revoking it is accepted (the credentials simply expire)
    assert http.put("/v1/sys/leases/renew", json={"lease_id": body["lease_id"]}).status_code == 400
    check(http.put("/v1/sys/leases/revoke", json={"lease_id": body["lease_id"]}), 204)


def test_iam_groups_become_the_session_policy_of_sts_roles(
    http: httpx.Client, moto: MotoAWS, sts_wire: TCPProxy
) -> None:
    admin = moto.client("iam")
    admin.create_group(GroupName="auditors")
    audit = {"Effect": "Allow", "Action": "iam:ListUsers", "Resource": "*"}
    admin.put_group_policy(GroupName="auditors", PolicyName="audit",
                           PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [audit]}))  # fmt: skip
    managed = admin.create_policy(PolicyName="auditors-extra", PolicyDocument=LIST_BUCKETS)["Policy"]["Arn"]
    admin.attach_group_policy(GroupName="auditors", PolicyArn=managed)
    check(http.post("/v1/aws/roles/fed-groups", json={"credential_type": "federation_token", "iam_groups": "auditors",
                                                      "policy_document": LIST_BUCKETS}), 204)  # fmt: skip
    check(http.get("/v1/aws/sts/fed-groups"))
    sent = _sts_calls(sts_wire, "GetFederationToken")[-1]
    statements = json.loads(sent["Policy"][0])["Statement"]
    assert audit in statements and json.loads(LIST_BUCKETS)["Statement"][0] in statements
    assert sent["PolicyArns.member.1.arn"] == [managed]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"credential_type": "root_user"}, "unrecognized credential type"),
        ({}, "did not supply credential_type"),
        ({"credential_type": "iam_user", "role_arns": f"arn:aws:iam::{ACCOUNT}:role/x"}, "role_arns"),
        ({"credential_type": "iam_user", "policy_document": "{not json"}, "cannot parse policy document"),
        ({"credential_type": "iam_user", "user_path": "no-slash"}, "user_path"),
        ({"credential_type": "assumed_role", "role_arns": "arn:aws:iam::1:role/x"}, "invalid role ARN"),
        ({"credential_type": "iam_user", "default_sts_ttl": "1h"}, "default_sts_ttl"),
        ({"credential_type": "iam_user", "iam_tags": ["novalue"]}, "invalid key pair"),
    ],
)
def test_bad_roles_are_refused_and_change_nothing(http: httpx.Client, payload: dict, message: str) -> None:
    resp = http.post("/v1/aws/roles/bad", json=payload)
    assert resp.status_code == 400 and message in resp.json()["errors"][0], resp.text
    assert http.get("/v1/aws/roles/bad").status_code == 404


def test_bad_config_and_unknown_roles_are_refused(http: httpx.Client) -> None:
    before = check(http.get("/v1/aws/config/root"))["data"]
    for payload in ({"iam_endpoint": "ftp://x"}, {"max_retries": -5}, {"username_template": "{{ printf .X }}"},
                    {"access_key": "AKIAONLYKEY"}, {"region": "Not A Region"}):  # fmt: skip
        resp = http.post("/v1/aws/config/root", json=payload)
        assert resp.status_code == 400 and resp.json()["errors"], payload
    assert check(http.get("/v1/aws/config/root"))["data"] == before
    resp = http.post("/v1/aws/config/lease", json={"lease": "2h", "lease_max": "1h"})
    assert resp.status_code == 400
    resp = http.get("/v1/aws/creds/nobody")
    assert resp.status_code == 400 and 'Role "nobody" not found' in resp.json()["errors"][0]


def test_a_failed_creation_leaves_no_user_behind(http: httpx.Client, moto: MotoAWS) -> None:
    check(http.post("/v1/aws/roles/broken", json={"credential_type": "iam_user", "iam_groups": ["no-such-group"]}),
          204)  # fmt: skip
    before = {u["UserName"] for u in moto.client("iam").list_users()["Users"]}
    resp = http.get("/v1/aws/creds/broken")
    assert resp.status_code == 400 and "Error adding user to group" in resp.json()["errors"][0]
    assert {u["UserName"] for u in moto.client("iam").list_users()["Users"]} == before


def test_rotate_root_leaves_only_the_new_key(aws_server: StrongroomServer, moto: MotoAWS) -> None:
    admin = moto.client("iam")
    admin.create_user(UserName="rotating-engine")
    admin.put_user_policy(UserName="rotating-engine", PolicyName="admin", PolicyDocument=ADMIN_POLICY)
    old = admin.create_access_key(UserName="rotating-engine")["AccessKey"]
    with aws_server.http() as h:
        check(h.post("/v1/sys/mounts/aws-rotating", json={"type": "aws"}), 204)
        config = moto.engine_config(access_key=old["AccessKeyId"], secret_key=old["SecretAccessKey"])
        check(h.post("/v1/aws-rotating/config/root", json=config), 204)
        new_key = check(h.post("/v1/aws-rotating/config/rotate-root"))["data"]["access_key"]
        assert new_key != old["AccessKeyId"] and set(check(h.post("/v1/aws-rotating/config/rotate-root"))["data"]) == {
            "access_key"}  # fmt: skip
        keys = [k["AccessKeyId"] for k in admin.list_access_keys(UserName="rotating-engine")["AccessKeyMetadata"]]
        current = check(h.get("/v1/aws-rotating/config/root"))["data"]["access_key"]
        assert keys == [current] and current != new_key
        assert refused(lambda: moto.client("iam", old["AccessKeyId"], old["SecretAccessKey"]).list_users()) in (
            "InvalidClientTokenId", "AccessDenied")  # fmt: skip
        # the engine goes on working with the key only it knows
        check(h.post("/v1/aws-rotating/roles/r", json={"credential_type": "iam_user", "policy_document": LIST_BUCKETS}),
              204)  # fmt: skip
        body = check(h.get("/v1/aws-rotating/creds/r"))
        assert moto.client("s3", body["data"]["access_key"], body["data"]["secret_key"]).list_buckets()
        check(h.put("/v1/sys/leases/revoke", json={"lease_id": body["lease_id"]}), 204)
        # rotate-root without keys is refused
        check(h.post("/v1/sys/mounts/aws-empty", json={"type": "aws"}), 204)
        resp = h.post("/v1/aws-empty/config/rotate-root")
        assert resp.status_code == 400 and "access_key or secret_key is empty" in resp.json()["errors"][0]


def test_hvac_aws_api_works_unchanged(aws_server: StrongroomServer, moto: MotoAWS) -> None:
    client = aws_server.client()
    client.sys.enable_secrets_engine("aws", path="aws-hvac")
    aws = client.secrets.aws
    aws.configure_root_iam_credentials(moto.access_key, moto.secret_key, region="us-east-1", iam_endpoint=moto.url,
                                       sts_endpoint=moto.url, max_retries=0, mount_point="aws-hvac")  # fmt: skip
    aws.configure_lease("30m", "1h", mount_point="aws-hvac")
    aws.create_or_update_role("reader", "iam_user", policy_document=json.loads(LIST_BUCKETS), iam_tags=["env=test"],
                              mount_point="aws-hvac")  # fmt: skip
    assert aws.read_role("reader", mount_point="aws-hvac")["data"]["iam_tags"] == {"env": "test"}
    assert aws.list_roles(mount_point="aws-hvac")["data"]["keys"] == ["reader"]
    body = aws.generate_credentials("reader", mount_point="aws-hvac")
    assert body["lease_duration"] == 1800
    assert "Buckets" in moto.client("s3", body["data"]["access_key"], body["data"]["secret_key"]).list_buckets()
    client.sys.revoke_lease(body["lease_id"])
    aws.delete_role("reader", mount_point="aws-hvac")
    assert client.adapter.get("/v1/aws-hvac/roles/reader", raise_exception=False).status_code == 404
