"""Per-request checks on tokens issued by logins: bound CIDRs and disabled entities (Vault's rules)."""

from __future__ import annotations

import hvac
import pytest


def test_token_bound_cidrs_admit_callers_inside_and_refuse_outside(k8s):  # noqa: ANN001
    k8s.root.write("auth/kubernetes/role/here", bound_service_account_names="s-emoji",
                   bound_service_account_namespaces="default", token_policies="kubernetes-reader",
                   token_bound_cidrs="127.0.0.0/8")
    k8s.root.write("auth/kubernetes/role/elsewhere", bound_service_account_names="s-emoji",
                   bound_service_account_namespaces="default", token_policies="kubernetes-reader",
                   token_bound_cidrs="10.0.0.0/8")
    sa = k8s.cluster.service_account("default", "s-emoji")
    here = k8s.login(k8s.cluster.projected_token(sa), role="here")
    assert here.auth.token.lookup_self()["data"]["policies"] == ["default", "kubernetes-reader"]
    # a login from outside the CIDR is refused by the auth method itself
    resp = k8s.login_http(k8s.cluster.projected_token(sa), role="elsewhere")
    assert resp.status_code == 403


def test_tokens_of_a_disabled_entity_stop_working(k8s):  # noqa: ANN001
    sa = k8s.cluster.service_account("default", "s-emoji")
    client = k8s.login(k8s.cluster.projected_token(sa))
    entity_id = client.auth.token.lookup_self()["data"]["entity_id"]
    assert entity_id
    k8s.root.secrets.identity.update_entity(entity_id=entity_id, disabled=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.auth.token.lookup_self()
    k8s.root.secrets.identity.update_entity(entity_id=entity_id, disabled=False)
    assert client.auth.token.lookup_self()["data"]["entity_id"] == entity_id


def test_kubernetes_reader_grants_only_its_own_database_creds(k8s):  # noqa: ANN001
    sa = k8s.cluster.service_account("default", "s-ledger")
    client = k8s.login(k8s.cluster.projected_token(sa))
    own = ["database/creds/k8s_rw_s-ledger_default", "database/creds/k8s_ro_s-ledger_default"]
    others = ["database/creds/k8s_rw_s-emoji_default", "database/creds/k8s_rw_s-ledger_payments",
              "database/creds/rw", "database/creds/k8s_rw_s-ledger_default/x", "database/roles/rw"]
    with k8s.server.http(token=client.token) as http:  # type: ignore[attr-defined]
        caps = http.post("/v1/sys/capabilities-self", json={"paths": own + others}).json()
    for path in own:
        assert caps[path] == ["read"], path
    for path in others:
        assert caps[path] == ["deny"], path
