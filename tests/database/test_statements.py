"""Role statement input in every form Vault accepts, and refusals of bad role input."""

from __future__ import annotations

import base64
import json

import pytest

from strongroom.core.logical import InvalidRequest
from strongroom.engines.database.entries import parse_statements
from strongroom.engines.database.plugins.base import render, split_statements

CQL = "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}'; GRANT SELECT ON KEYSPACE ks TO '{{username}}';"


def test_plain_json_and_base64_forms_are_equivalent():
    as_list = [CQL]
    assert parse_statements(CQL, "creation_statements") == as_list
    assert parse_statements(json.dumps(as_list), "creation_statements") == as_list
    assert parse_statements(base64.b64encode(CQL.encode()).decode(), "creation_statements") == as_list
    assert parse_statements(base64.b64encode(json.dumps(as_list).encode()).decode(), "x") == as_list
    assert parse_statements(as_list, "creation_statements") == as_list
    assert parse_statements("", "x") == [] and parse_statements(None, "x") == []
    with pytest.raises(InvalidRequest):
        parse_statements([1, 2], "x")
    with pytest.raises(InvalidRequest):
        parse_statements({"a": 1}, "x")


def test_statements_split_on_semicolons_except_dollar_quoted_bodies():
    assert split_statements([CQL]) == [
        "CREATE ROLE '{{username}}' WITH PASSWORD = '{{password}}'",
        "GRANT SELECT ON KEYSPACE ks TO '{{username}}'",
    ]
    body = "DO $$ BEGIN CREATE ROLE x; GRANT y TO x; END $$;"
    assert split_statements([body], keep_dollar_quoted=True) == [body]
    assert render("'{{username}}' '{{name}}'", {"username": "u", "name": "u"}) == "'u' 'u'"
