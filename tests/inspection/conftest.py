"""A module-scoped dev server for the inspection tests (explorer API, history, UI)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import StrongroomServer


@pytest.fixture(scope="module")
def inspected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrongroomServer]:
    server = StrongroomServer(tmp_path_factory.mktemp("inspection")).start()
    try:
        yield server
    finally:
        server.stop()
