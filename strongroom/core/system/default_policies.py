"""Default workload access: the ``kubernetes-reader`` policy and what ``bootstrap`` installs for it.

After bootstrap a brand-new service needs no setup: its pod logs in at ``auth/kubernetes`` with the ServiceAccount
token Kubernetes mounted for it (role ``default`` admits every ServiceAccount in every namespace) and gets a token
whose only grant is ``kubernetes-reader``: read and list under ``secret/k8s/<its namespace>/<its name>/``. The two
values come from the entity alias the kubernetes mount vouched for, so the policy names that mount's accessor.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from strongroom.engines.pki.workload import install as install_workload_pki
from strongroom.engines.pki.workload import issue_policy_stanza

if TYPE_CHECKING:
    from strongroom.core.core import Core

KUBERNETES_MOUNT = "kubernetes/"
READER_POLICY = "kubernetes-reader"
DEFAULT_ROLE = "default"
DEFAULT_ROLE_TTL = 3600
DEFAULT_ROLE_MAX_TTL = 86400
# the KMS v2 plugin's grant: a fixed key name, so bootstrap can install it before anyone configures the plugin
KMS_PLUGIN_POLICY = "kms-plugin"
KMS_PLUGIN_MOUNT = "transit"
KMS_PLUGIN_KEY = "kubernetes-kms"
# ``strongroom detect``: read-only lookups of who an entity is, and the audit chain check (a yes/no on a MAC)
DETECTION_POLICY = "detection"
DETECTION_POLICY_TEXT = """# strongroom detect: who entities are, and audit chain MAC checks; nothing else
path "identity/entity/id/*" { capabilities = ["read"] }
path "identity/group/id/*" { capabilities = ["read"] }
path "sys/audit-chain/*" { capabilities = ["read", "update"] }
"""


def kms_plugin_policy(mount: str = KMS_PLUGIN_MOUNT, key: str = KMS_PLUGIN_KEY) -> str:
    """Exactly what ``strongroom kms-plugin --mount MOUNT --key KEY`` calls: encrypt, decrypt, read the key."""
    return f"""# {KMS_PLUGIN_POLICY}: what kube-apiserver's KMS v2 plugin (strongroom kms-plugin) may do, nothing else.
# It encrypts and decrypts DEK seeds with transit key {mount}/{key} and reads the key for its latest version.

path "{mount}/encrypt/{key}" {{
  capabilities = ["update"]
}}

path "{mount}/decrypt/{key}" {{
  capabilities = ["update"]
}}

path "{mount}/keys/{key}" {{
  capabilities = ["read"]
}}
"""


def kubernetes_reader_policy(accessor: str) -> str:
    meta = f"identity.entity.aliases.{accessor}.metadata"
    own = f"{{{{{meta}.service_account_namespace}}}}/{{{{{meta}.service_account_name}}}}"
    return f"""# kubernetes-reader: what every Kubernetes workload may do by default (installed by bootstrap).
# A ServiceAccount reads and lists its own secrets, secret/k8s/<namespace>/<service-account>/..., and nothing else.
# <namespace> and <service-account> come from the entity alias of the kubernetes auth mount {accessor};
# a value that is empty or contains '*', '+' or '/' drops the rule, so an odd name never widens access.

path "secret/data/k8s/{own}/*" {{
  capabilities = ["read", "list"]
}}

path "secret/metadata/k8s/{own}/*" {{
  capabilities = ["read", "list"]
}}

# Its own short-lived database credentials: exactly the dynamic roles named after it, and no other creds path.
path "database/creds/k8s_rw_{{{{{meta}.service_account_name}}}}_{{{{{meta}.service_account_namespace}}}}" {{
  capabilities = ["read"]
}}

path "database/creds/k8s_ro_{{{{{meta}.service_account_name}}}}_{{{{{meta}.service_account_namespace}}}}" {{
  capabilities = ["read"]
}}

# Its own short-lived AWS credentials: the role its ServiceAccount's aws-role-arn annotation names, nothing else.
path "aws/creds/k8s_app_{{{{{meta}.service_account_name}}}}_{{{{{meta}.service_account_namespace}}}}" {{
  capabilities = ["read"]
}}

""" + issue_policy_stanza()


async def bootstrap(core: Core) -> list[str]:
    """Install (idempotently) the kubernetes mount, the kubernetes-reader policy and the ``default`` role."""
    from strongroom.auth.kubernetes.backend import KubernetesBackend
    from strongroom.core.mounts import new_mount

    installed: list[str] = []
    route = core.router.get("auth/" + KUBERNETES_MOUNT)
    if route is None:
        # routed only when this request commits: use the route the mount hands back
        route = await core.mount(new_mount(KUBERNETES_MOUNT, "kubernetes", is_auth=True,
                                           description="Kubernetes workloads log in with their ServiceAccount token"))
        installed.append("auth/kubernetes")
    assert route is not None
    backend = route.backend
    if not isinstance(backend, KubernetesBackend):
        raise RuntimeError(f"auth/{KUBERNETES_MOUNT} is mounted but is not a kubernetes auth method")

    await core.policies.set(READER_POLICY, kubernetes_reader_policy(route.entry.accessor))
    installed.append(f"policy {READER_POLICY}")

    if await backend.role(DEFAULT_ROLE) is None:
        await backend.ctx.storage.put_json(f"role/{DEFAULT_ROLE}", {
            "bound_service_account_names": ["*"],
            "bound_service_account_namespaces": ["*"],
            "audience": "",
            "alias_name_source": "serviceaccount_uid",
            "token": {"token_policies": [READER_POLICY], "token_ttl": DEFAULT_ROLE_TTL,
                      "token_max_ttl": DEFAULT_ROLE_MAX_TTL},
        })
        installed.append(f"auth/kubernetes/role/{DEFAULT_ROLE}")

    # inside a cluster the API server is known from the pod's environment; elsewhere the operator configures it
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if host and await backend.config() is None:
        await backend.ctx.storage.put_json("config", {
            "kubernetes_host": f"https://{host}:{port}", "kubernetes_ca_cert": "", "token_reviewer_jwt": "",
            "pem_keys": [], "issuer": "", "disable_iss_validation": True, "disable_local_ca_jwt": False,
        })
        installed.append("auth/kubernetes/config")
    installed += await install_workload_pki(core, route.entry.accessor)
    return installed
