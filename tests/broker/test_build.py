"""`strongroom broker build` gives the same bytes and measurement from two checkouts of the same sources."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from strongroom.broker.build import build_artifact, default_source

STRONGROOM = str(Path(sys.executable).parent / "strongroom")


def _checkout(src: Path, dest: Path, mtime: int, mode: int) -> Path:
    shutil.copytree(src / "strongroom", dest / "strongroom", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(src / "pyproject.toml", dest / "pyproject.toml")
    for path in dest.rglob("*"):
        if path.is_file():
            path.chmod(mode)
            os.utime(path, (mtime, mtime))
    return dest


def test_two_builds_in_different_directories_are_identical(tmp_path):
    # One snapshot stands for "the commit": the working tree may be edited by others while the test runs.
    src = _checkout(default_source(), tmp_path / "commit", 1_500_000_000, 0o644)
    a = _checkout(src, tmp_path / "machine-a" / "checkout", 1_600_000_000, 0o644)
    b = _checkout(src, tmp_path / "machine-b" / "elsewhere" / "co", 1_700_000_000, 0o600)
    (b / "strongroom" / "__pycache__").mkdir(exist_ok=True)
    (b / "strongroom" / "__pycache__" / "junk.cpython-311.pyc").write_bytes(b"cache")
    outs = []
    for checkout, out in ((a, tmp_path / "a.zip"), (b, tmp_path / "b.zip")):
        r = subprocess.run([STRONGROOM, "broker", "build", "--source", str(checkout), "--out", str(out)],
                           capture_output=True, text=True, cwd=checkout, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.split()[0])
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert outs[0] == outs[1] == hashlib.sha384((tmp_path / "a.zip").read_bytes()).hexdigest()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        names = zf.namelist()
        assert names == sorted(names[:-1]) + ["strongroom-broker.lock"]
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
        assert not any("__pycache__" in n for n in names)
        assert b"PyJWT==2.15.1" in zf.read("strongroom-broker.lock")


def test_a_changed_source_changes_the_measurement(tmp_path):
    src = default_source()
    a = _checkout(src, tmp_path / "a", 1_600_000_000, 0o644)
    before = hashlib.sha384(build_artifact(a)).hexdigest()
    target = a / "strongroom" / "broker" / "service.py"
    target.write_text(target.read_text() + "\n# a backdoor would go here\n")
    assert hashlib.sha384(build_artifact(a)).hexdigest() != before


def test_unpinned_dependency_refused(tmp_path):
    a = _checkout(default_source(), tmp_path / "a", 1_600_000_000, 0o644)
    pyproject = a / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"PyJWT==2.15.1"', '"PyJWT>=2"'))
    r = subprocess.run([STRONGROOM, "broker", "build", "--source", str(a), "--out", str(tmp_path / "x.zip")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "pinned" in r.stderr
