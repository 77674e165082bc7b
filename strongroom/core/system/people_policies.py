"""Policies for people, installed by ``strongroom operator bootstrap``.

``secret-writer``: engineers add new secrets and new versions for any service, see which exist, and can neither
overwrite, delete nor read a value. ``create`` without ``update`` on the data path is what makes a version immutable:
the existence check turns a write to an existing version into an ``update``, which the policy does not grant; the CLI
also writes with check-and-set 0.
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

POLICIES = {"secret-writer": SECRET_WRITER_POLICY}
