"""Fixtures of the end-to-end suite (Hub, notebooks, browser).

* ``lab_stack`` — the whole embedded lab with a managed lab API (see tests/e2e/_stack.py).
* ``browser`` — a headless Debian Chromium driven by Playwright (never a downloaded browser).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e._stack import lab_stack

__all__ = ["browser", "lab_stack"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's) through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
