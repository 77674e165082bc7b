"""The committed Python stubs are exactly what grpcio-tools generates from the committed upstream api.proto."""

from __future__ import annotations

from pathlib import Path

from strongroom.kms.proto import generate

PROTO_DIR = Path(generate.__file__).parent


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    for fresh in generate.generate(tmp_path):
        committed = PROTO_DIR / fresh.name
        assert committed.read_text() == fresh.read_text(), (
            f"{committed} is stale: run python -m strongroom.kms.proto.generate")


def test_proto_is_the_upstream_kms_v2_api() -> None:
    text = (PROTO_DIR / "api.proto").read_text()
    assert "Licensed under the Apache License, Version 2.0" in text
    assert "package v2;" in text and 'option go_package = "k8s.io/kms/apis/v2";' in text
    for rpc in ("rpc Status(StatusRequest) returns (StatusResponse)",
                "rpc Decrypt(DecryptRequest) returns (DecryptResponse)",
                "rpc Encrypt(EncryptRequest) returns (EncryptResponse)"):
        assert rpc in text
