"""Generate ``fixtures/store-v1.db`` (+ ``store-v1.json``): a store written by the storage format version 1 binary.

Run once, from the repository root, when a new storage format version is introduced (name the files after the
version they hold and keep the old ones): ``python -m tests.ops.make_upgrade_fixture``. Every later binary must open
every fixture kept here (``test_upgrade.py``). The key and token in the JSON guard nothing but this test data.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

from strongroom.ops.storage_format import CURRENT
from tests.conftest import StrongroomServer

HERE = Path(__file__).resolve().parent / "fixtures"
SECRETS = {
    "k8s/default/s-emoji/db-password/2026-11-26": {"data": "hunter2"},
    "k8s/default/s-ledger/api-key/2026-11-26": {"data": "ledger-key-1"},
    "team/payments/config": {"data": "v1", "region": "eu-west-1"},
}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="strongroom-fixture-"))
    srv = StrongroomServer(work, root_token="sr-upgrade-fixture-root").start()
    try:
        client = srv.client()
        for path, data in SECRETS.items():
            client.secrets.kv.v2.create_or_update_secret(path, secret=data)
        client.secrets.kv.v2.create_or_update_secret("team/payments/config", secret={"data": "v2"})
        client.sys.create_or_update_policy("reader", 'path "secret/data/*" { capabilities = ["read"] }')
    finally:
        srv.stop()
    HERE.mkdir(exist_ok=True)
    target = HERE / f"store-v{CURRENT}.db"
    shutil.copyfile(srv.storage_path, target)
    with sqlite3.connect(target) as conn:  # one self-contained file: no WAL beside it
        conn.execute("PRAGMA journal_mode=DELETE")
    (HERE / f"store-v{CURRENT}.json").write_text(
        json.dumps(
            {
                "storage_format_version": CURRENT,
                "unseal_key": srv.unseal_key,
                "root_token": srv.root_token,
                "secrets": {**SECRETS, "team/payments/config": {"data": "v2"}},
                "versions": {"team/payments/config": {"1": {"data": "v1", "region": "eu-west-1"}}},
                "policies": ["reader"],
            },
            indent=2,
        )
        + "\n"
    )
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
