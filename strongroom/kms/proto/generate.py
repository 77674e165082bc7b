"""Regenerate the committed Python stubs of the KMS v2 API from ``api.proto`` (needs grpcio-tools).

``python -m strongroom.kms.proto.generate [OUT_DIR]`` writes ``strongroom/kms/proto/api_pb2*.py`` under OUT_DIR
(default: the folder that holds the ``strongroom`` package). The proto is compiled under its package path so the
generated gRPC module imports ``strongroom.kms.proto.api_pb2`` rather than a top-level ``api_pb2``; the wire names
(``v2.*``) come from the proto's own ``package v2`` and are unchanged. Generated code is not ours to lint or
type-check, so each file gets a header that tells ruff and mypy so.
"""

from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path

PROTO = "strongroom/kms/proto/api.proto"
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")
HEADER = "# ruff: noqa\n# mypy: ignore-errors\n"


def generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc

    root = Path(__file__).resolve().parents[3]
    include = resources.files("grpc_tools") / "_proto"
    target = out_dir / "strongroom" / "kms" / "proto"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{root}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            str(root / PROTO),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed on " + PROTO)
        for name in GENERATED:
            text = (Path(tmp) / "strongroom" / "kms" / "proto" / name).read_text()
            (target / name).write_text(HEADER + text)
            written.append(target / name)
    return written


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[3]
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else default):
        print(path)
