"""``sys/internal/specs/openapi`` is a valid OpenAPI 3 document (issue 18 item 16), so generators and schemathesis work:
every templated path declares its parameters and no path carries raw regex."""

from __future__ import annotations

import re

from openapi_spec_validator import OpenAPIV30SpecValidator

from .conftest import Audited


def test_openapi_document_is_valid(audited: Audited) -> None:
    with audited.server.http() as http:
        for mount, kind in (("db-openapi", "database"), ("kv1-openapi", "kv")):
            assert http.post(f"/v1/sys/mounts/{mount}", json={"type": kind}).status_code == 204
        r = http.get("/v1/sys/internal/specs/openapi")
        assert r.status_code == 200, r.text
    doc = r.json()
    errors = [str(e).splitlines()[0] for e in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []
    paths = doc["paths"]
    # the engines that were mounted are described, with their templated paths
    assert "/db-openapi/roles/{name}" in paths and "/auth/token/roles/{role_name}" in paths
    assert "/secret/data/{path}" in paths and "/sys/policies/acl/{name}" in paths
    for path, item in paths.items():
        assert path.startswith("/") and not re.search(r"[()\[\]|*+?^$\\<>]", path), path
        names = re.findall(r"\{(\w+)\}", path)
        declared = [p["name"] for p in item.get("parameters", []) if p["in"] == "path"]
        assert declared == names, path
        assert all(p["required"] for p in item.get("parameters", []))
    role = paths["/auth/token/roles/{role_name}"]["parameters"][0]
    assert role == {"name": "role_name", "in": "path", "required": True, "description": role["description"],
                    "schema": {"type": "string"}}  # fmt: skip
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values() if isinstance(op, dict)
                     and "operationId" in op]  # fmt: skip
    assert len(operation_ids) == len(set(operation_ids))
