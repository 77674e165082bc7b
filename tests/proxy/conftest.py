from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

from strongroom.core.system.people_policies import SECRET_WRITER_POLICY, STAFF_PROXY_POLICY, WEB_USER_POLICY

from .staff import Idp, Proxy, start_proxy


@dataclass
class Staff:
    server: object
    root: hvac.Client
    idp: Idp
    proxy: Proxy
    audit_log: Path

    def audit_entries(self) -> list[dict]:
        import json

        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]


@pytest.fixture
def staff(server, tmp_path: Path) -> Iterator[Staff]:  # noqa: ANN001
    root = server.client()
    root.sys.create_or_update_acl_policy(name="secret-writer", policy=SECRET_WRITER_POLICY)
    root.sys.create_or_update_acl_policy(name="web-user", policy=WEB_USER_POLICY)
    root.sys.create_or_update_acl_policy(name="staff-proxy", policy=STAFF_PROXY_POLICY)
    audit_log = tmp_path / "audit.log"
    root.sys.enable_audit_device("file", options={"file_path": str(audit_log)})
    proxy_token = root.auth.token.create(policies=["web-user", "staff-proxy"], ttl="1h", display_name="staff-proxy")
    idp = Idp()
    proxy = start_proxy(tmp_path, server.addr, proxy_token["auth"]["client_token"], idp)
    yield Staff(server, root, idp, proxy, audit_log)
    proxy.stop()
    idp.close()
