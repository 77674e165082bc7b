"""Pods get short-lived AWS credentials for the IAM role their ServiceAccount names, with nothing set up per service.

Two stand-ins, the only kind the project allows (no Kubernetes API server can run here): ``FakeCluster`` answers the
kubernetes auth method's TokenReview for pod logins, and ``KubeAPI`` serves the ServiceAccounts (with their
``strongroom.io/aws-role-arn`` annotations) in the real list/watch wire format. moto stands in for AWS.
The client part drives ``strongroom.secretstore.aws_credentials`` with boto3 as a service would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from strongroom.secretstore.aws import AWSCredentials
from tests.aws.conftest import ACCOUNT, REGION, MotoAWS
from tests.conftest import StrongroomServer, wait_for
from tests.database.kube_standin import KubeAPI, service_account
from tests.identity.k8s_tokens import FakeCluster

ANNOTATION = "strongroom.io/aws-role-arn"
TRUST_ENGINE = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/strongroom-engine"},
    "Action": "sts:AssumeRole"}]})  # fmt: skip
LIST_BUCKETS = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
)


@dataclass
class Env:
    server: StrongroomServer
    cluster: FakeCluster
    kube: KubeAPI
    emoji_role: str

    def login(self, namespace: str, name: str) -> str:
        sa = self.cluster.accounts.get((namespace, name)) or self.cluster.service_account(namespace, name)
        client = self.server.client(token="")
        client.auth.kubernetes.login("default", self.cluster.projected_token(sa))
        return str(client.token)


def _check(resp: httpx.Response, status: int = 200) -> dict:
    assert resp.status_code == status, resp.text
    return resp.json() if resp.content else {}


@pytest.fixture(scope="module")
def env(aws_server: StrongroomServer, moto: MotoAWS) -> Iterator[Env]:
    admin = moto.client("iam")
    emoji = admin.create_role(RoleName="emoji", Path="/k8s/default/", AssumeRolePolicyDocument=TRUST_ENGINE)
    admin.put_role_policy(RoleName="emoji", PolicyName="lister", PolicyDocument=LIST_BUCKETS)
    emoji_arn = emoji["Role"]["Arn"]
    cluster = FakeCluster().start()
    kube = KubeAPI().start()
    kube.put(service_account("s-emoji", annotations={ANNOTATION: emoji_arn}))
    # a role in another team's path: the annotation alone must not get it
    kube.put(service_account("s-greedy", annotations={ANNOTATION: f"arn:aws:iam::{ACCOUNT}:role/k8s/payments/ledger"}))
    kube.put(service_account("s-plain"))
    root = aws_server.client()
    root.auth.kubernetes.configure(kubernetes_host=cluster.url, kubernetes_ca_cert=cluster.ca_pem,
                                   token_reviewer_jwt=cluster.reviewer_token)  # fmt: skip
    with aws_server.http() as h:
        _check(h.post("/v1/aws/config/root", json=moto.engine_config()), 204)
        _check(h.post("/v1/aws/serviceaccounts/config", json={"kubernetes_host": kube.url, "token": kube.token}), 204)
        pattern = f"arn:aws:iam::{ACCOUNT}:role/k8s/{{{{namespace}}}}/*"
        _check(h.post("/v1/aws/config/dynamic-roles", json={"allowed_role_arns": [pattern]}), 204)
        _check(h.post("/v1/aws/roles/app", json={"credential_type": "assumed_role", "policy_document": LIST_BUCKETS,
                                                  "default_sts_ttl": "15m"}), 204)  # fmt: skip
        wait_for(lambda: "kubernetes" in h.get("/v1/aws/serviceaccounts/status").json()["data"]["synced_sources"],
                 message="ServiceAccount list")  # fmt: skip
    yield Env(aws_server, cluster, kube, emoji_arn)
    kube.stop()
    cluster.stop()


def test_a_pod_assumes_the_role_its_service_account_names(env: Env, moto: MotoAWS) -> None:
    token = env.login("default", "s-emoji")
    with env.server.http(token=token) as pod:
        body = _check(pod.get("/v1/aws/creds/k8s_app_s-emoji_default"))
        data = body["data"]
        assert body["renewable"] is False and 0 < body["lease_duration"] <= 900
        ident = moto.client("sts", data["access_key"], data["secret_key"], data["session_token"]).get_caller_identity()
        assert ident["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/emoji/")
        # kubernetes-reader grants exactly its own dynamic role: not another pod's, not a plain role, not the config
        for path in ("/v1/aws/creds/k8s_app_s-greedy_default", "/v1/aws/creds/app", "/v1/aws/sts/app",
                     "/v1/aws/roles/app", "/v1/aws/config/root"):  # fmt: skip
            assert pod.get(path).status_code == 403, path


def test_annotations_outside_the_allowed_pattern_or_missing_are_refused(env: Env) -> None:
    with env.server.http() as root:
        resp = root.get("/v1/aws/creds/k8s_app_s-greedy_default")
        assert resp.status_code == 400 and "does not allow" in resp.json()["errors"][0]
        resp = root.get("/v1/aws/creds/k8s_app_s-plain_default")
        assert resp.status_code == 400 and "has no strongroom.io/aws-role-arn annotation" in resp.json()["errors"][0]
        resp = root.get("/v1/aws/creds/k8s_app_s-nobody_default")
        assert resp.status_code == 400 and "is not known" in resp.json()["errors"][0]
        role = _check(root.get("/v1/aws/roles/k8s_app_s-emoji_default"))["data"]
        assert role["role_arns"] == [env.emoji_role] and role["dynamic_from"].startswith("app:default/s-emoji:")
        # the role session names who asked: the pod's kubernetes display name
        config = _check(root.get("/v1/aws/config/dynamic-roles"))["data"]
        assert config["allowed_role_arns"] == [f"arn:aws:iam::{ACCOUNT}:role/k8s/{{{{namespace}}}}/*"]
        assert root.post("/v1/aws/config/dynamic-roles", json={"allowed_role_arns": ["*"]}).status_code == 400


def test_client_hands_boto3_credentials_that_refresh_before_expiry(env: Env, moto: MotoAWS) -> None:
    # STS sessions last at least 15 minutes; the mount's max lease TTL makes the lease (which the client follows)
    # end after 6 seconds, so the refresh happens within the test
    with env.server.http() as root:
        _check(root.post("/v1/sys/mounts/aws-short", json={"type": "aws", "config": {"max_lease_ttl": "6s"}}), 204)
        _check(root.post("/v1/aws-short/config/root", json=moto.engine_config()), 204)
        _check(root.post("/v1/aws-short/roles/emoji", json={"credential_type": "assumed_role",
                                                            "role_arns": [env.emoji_role]}), 204)  # fmt: skip
    creds = AWSCredentials(role_name="emoji", mount="aws-short", addr=env.server.addr, backoff_initial=0.5,
                           backoff_max=2, token_provider=lambda: env.server.root_token)  # fmt: skip
    try:
        first = creds.wait(timeout=30)
        assert creds.ready() and first.lease_duration <= 6 and first.session_token
        session = boto3.Session(botocore_session=creds.botocore_session(), region_name=REGION)
        s3 = session.client("s3", endpoint_url=moto.url)
        sts = session.client("sts", endpoint_url=moto.url)
        assert "Buckets" in s3.list_buckets()
        # STS credentials cannot be renewed: new ones are fetched before the lease ends, and boto3 switches to them
        wait_for(lambda: creds.current().access_key != first.access_key, timeout=30, message="refreshed credentials")
        assert sts.get_caller_identity()["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/emoji/")
        assert session.get_credentials().get_frozen_credentials().access_key == creds.current().access_key
        assert "Buckets" in s3.list_buckets() and creds.stats["fetches"] >= 2
    finally:
        creds.close()


def test_client_renews_an_iam_user_lease_and_keeps_its_key(env: Env, moto: MotoAWS) -> None:
    with env.server.http() as root:
        _check(root.post("/v1/sys/mounts/aws-users", json={"type": "aws"}), 204)
        _check(root.post("/v1/aws-users/config/root", json=moto.engine_config()), 204)
        _check(root.post("/v1/aws-users/config/lease", json={"lease": "4s", "lease_max": "1h"}), 204)
        _check(root.post("/v1/aws-users/roles/lister", json={"credential_type": "iam_user",
                                                             "policy_document": LIST_BUCKETS}), 204)  # fmt: skip
    creds = AWSCredentials(role_name="lister", mount="aws-users", addr=env.server.addr,
                           token_provider=lambda: env.server.root_token)  # fmt: skip
    try:
        first = creds.wait(timeout=30)
        session = boto3.Session(botocore_session=creds.botocore_session(), region_name=REGION)
        wait_for(lambda: creds.stats["renewals"] >= 2, timeout=30, message="two renewals")
        assert creds.current().access_key == first.access_key and creds.stats["fetches"] == 1
        assert "Buckets" in session.client("s3", endpoint_url=moto.url).list_buckets()
    finally:
        creds.close(revoke=True)
    # close(revoke=True) revoked the lease: the IAM user and its key are gone
    with pytest.raises(ClientError):
        moto.client("s3", first.access_key, first.secret_key).list_buckets()


def test_the_audit_trail_leads_from_an_access_key_to_the_pod(env: Env, tmp_path) -> None:  # noqa: ANN001
    audit_file = tmp_path / "audit.log"
    root = env.server.client()
    root.sys.enable_audit_device("file", path="aws-trace", options={"file_path": str(audit_file)})
    try:
        with env.server.http(token=env.login("default", "s-emoji")) as pod:
            data = _check(pod.get("/v1/aws/creds/k8s_app_s-emoji_default"))["data"]
        # an access key ID seen in AWS's logs is hashed with the device's key and found in the trail
        hashed = root.sys.calculate_hash("aws-trace", data["access_key"])["data"]["hash"]
        lines = [json.loads(line) for line in audit_file.read_text().splitlines() if line.strip()]
        entries = [e for e in lines if e.get("type") == "response"
                   and (e.get("response") or {}).get("data", {}).get("access_key") == hashed]  # fmt: skip
        assert len(entries) == 1
        entry = entries[0]
        assert entry["request"]["path"] == "aws/creds/k8s_app_s-emoji_default"
        metadata = entry["auth"]["metadata"]
        assert metadata["service_account_name"] == "s-emoji" and metadata["service_account_namespace"] == "default"
        text = audit_file.read_text()
        assert data["secret_key"] not in text and data["session_token"] not in text
    finally:
        root.sys.disable_audit_device("aws-trace")
