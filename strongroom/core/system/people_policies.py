"""Policies for people, installed by ``strongroom operator bootstrap``.

``secret-writer``: engineers add new secrets and new versions for any service, see which exist, and can neither
overwrite, delete nor read a value. ``create`` without ``update`` on the data path is what makes a version immutable:
the existence check turns a write to an existing version into an ``update``, which the policy does not grant; the CLI
also writes with check-and-set 0.

``web-user``: what a staff member may do through the staff proxy — everything ``secret-writer`` allows, plus inspecting
the configuration (mounts, auth methods, policies). ``staff-proxy``: the proxy's own identity gets ``web-user`` and the
right to mint child tokens; children are created with ``web-user`` only, so nobody can do more through the proxy.
"""

from __future__ import annotations

SECRET_WRITER_POLICY = """\
# Add a new secret or a new version of one. No "update": an existing version cannot be overwritten.
path "secret/data/k8s/*" {
  capabilities = ["create"]
}

# See which secrets and versions exist (names, versions, created time and creator), never their values.
path "secret/metadata/k8s/*" {
  capabilities = ["read", "list"]
}

# Encrypt values end to end to the server's transport key.
path "sys/transport/key" {
  capabilities = ["read"]
}
"""  # noqa: S105 - policy text, not a password

WEB_USER_POLICY = (
    SECRET_WRITER_POLICY
    + """
# Inspect the configuration: mounts, auth methods, policies.
path "sys/mounts" {
  capabilities = ["read"]
}

path "sys/auth" {
  capabilities = ["read"]
}

path "sys/policies/acl" {
  capabilities = ["list"]
}

path "sys/policies/acl/*" {
  capabilities = ["read"]
}

# The proxy mints children without the default policy; this is the one thing of it they need (is my token alive?).
# The proxy strips the token's id from the answer, so nobody learns a usable token this way.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
"""
)

STAFF_PROXY_POLICY = """\
# The staff proxy mints a short-lived child token per staff user (with the web-user policy only).
path "auth/token/create" {
  capabilities = ["update"]
}
"""

POLICIES = {"secret-writer": SECRET_WRITER_POLICY, "web-user": WEB_USER_POLICY, "staff-proxy": STAFF_PROXY_POLICY}
