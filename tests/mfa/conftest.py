"""One headless Chromium (Debian's) for the WebAuthn tests of this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mfa.webauthn_setup import ARGS, CHROMIUM


# module scope: one sync Playwright at a time per process, and other folders start their own
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # a missing browser is a failure, never a skip: CI must exercise WebAuthn for real
    assert Path(CHROMIUM).exists(), "Debian chromium is not installed (scripts/install installs it)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
