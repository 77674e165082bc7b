"""Session policies from IAM groups: for ``assumed_role`` and ``federation_token`` roles, ``iam_groups`` means "the
policies of these groups", sent to STS as the session policy (inline group policies merged with the role's
``policy_document``) and policy ARNs (the groups' attached managed policies), as in Vault."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from strongroom.core.logical import InvalidRequest
from strongroom.engines.aws.client import AWSError, Clients, call


async def group_policies(clients: Clients, groups: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The inline policy documents and the attached policy ARNs of ``groups``."""
    documents: list[dict[str, Any]] = []
    arns: list[str] = []
    try:
        for group in groups:
            for name in (await call(clients.iam.list_group_policies, GroupName=group))["PolicyNames"]:
                doc = (await call(clients.iam.get_group_policy, GroupName=group, PolicyName=name))["PolicyDocument"]
                documents.append(json.loads(unquote(doc)) if isinstance(doc, str) else doc)
            attached = await call(clients.iam.list_attached_group_policies, GroupName=group)
            arns += [p["PolicyArn"] for p in attached["AttachedPolicies"]]
    except AWSError as exc:
        raise InvalidRequest(f"unable to read the policies of iam_groups: {exc}") from None
    return documents, arns


def combine(*documents: dict[str, Any] | str) -> str:
    """One policy document holding every statement of ``documents`` (empty ones skipped)."""
    statements: list[Any] = []
    for doc in documents:
        if not doc:
            continue
        parsed = json.loads(doc) if isinstance(doc, str) else doc
        found = parsed.get("Statement", [])
        statements += found if isinstance(found, list) else [found]
    if not statements:
        return ""
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))
