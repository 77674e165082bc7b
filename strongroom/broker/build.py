"""A reproducible build of the broker: the same commit gives the same bytes, and so the same measurement, anywhere.

The artifact is a zip of the ``strongroom`` package sources plus a lock file of the pinned runtime dependencies from
``pyproject.toml``. Entries are sorted, stored uncompressed (DEFLATE output differs between zlib builds), dated
1980-01-01, owned by no one and mode 0644; caches and hidden files are left out. Its SHA-384 is the measurement that
the key-release policy allows. (In an enclave deployment PCR0 measures the whole image built from this artifact.)
"""

from __future__ import annotations

import hashlib
import io
import re
import tomllib
import zipfile
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".tmp", ".swp"}
_PINNED = re.compile(r"^[A-Za-z0-9_.\-\[\],]+==[A-Za-z0-9_.+\-!]+$")


class BuildError(Exception):
    pass


def default_source() -> Path:
    return Path(__file__).resolve().parents[2]


def _sources(root: Path) -> list[tuple[str, Path]]:
    package = root / "strongroom"
    if not package.is_dir():
        raise BuildError(f"{root} does not contain the strongroom package")
    files = []
    for path in package.rglob("*"):
        rel = path.relative_to(root)
        if not path.is_file() or any(p in _SKIP_DIRS or p.startswith(".") for p in rel.parts):
            continue
        if path.suffix in _SKIP_SUFFIXES:
            continue
        files.append((rel.as_posix(), path))
    return sorted(files)


def lock_file(root: Path) -> bytes:
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"cannot read pyproject.toml: {exc}") from None
    deps = [str(d).replace(" ", "") for d in project.get("dependencies", [])]
    loose = [d for d in deps if not _PINNED.match(d)]
    if loose:
        raise BuildError(f"dependencies must be pinned with ==: {', '.join(loose)}")
    lines = [f"# {project.get('name')} {project.get('version')} requires-python {project.get('requires-python')}"]
    return ("\n".join(lines + sorted(deps, key=str.lower)) + "\n").encode()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def build_artifact(root: Path | None = None) -> bytes:
    root = (root or default_source()).resolve()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, path in _sources(root):
            zf.writestr(_entry(name), path.read_bytes())
        zf.writestr(_entry("strongroom-broker.lock"), lock_file(root))
    return buf.getvalue()


def measurement(artifact: bytes) -> str:
    return hashlib.sha384(artifact).hexdigest()
