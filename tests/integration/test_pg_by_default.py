"""``make test`` runs the PostgreSQL half by default: the documented server is found without
``LAB_TEST_PG``, and in CI a missing PostgreSQL is a failure, never a skip.

Each case runs a one-test file (``_pg_probe.py``) in a child pytest with a controlled environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_DEFAULT, ROOT

pytestmark = [pytest.mark.integration]
PROBE = Path(__file__).with_name("_pg_probe.py")


def _run(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("LAB_TEST_PG", "CI")}
    out = subprocess.run(  # our own interpreter on our own test file
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            str(PROBE),
        ],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out.stdout + out.stderr


def test_the_documented_postgresql_is_used_without_lab_test_pg() -> None:
    out = _run()
    assert "2 passed" in out and "skipped" not in out, out


def test_in_ci_a_missing_postgresql_fails_instead_of_skipping() -> None:
    out = _run(CI="1", LAB_TEST_PG="postgresql://postgres@127.0.0.1:1/test")
    assert "1 failed" in out and "1 passed" in out and "skipped" not in out, out
    assert "CI never skips the PostgreSQL tests" in out


def test_outside_ci_a_missing_postgresql_is_skipped_with_the_reason() -> None:
    out = _run(LAB_TEST_PG="postgresql://postgres@127.0.0.1:1/test")
    assert "1 passed, 1 skipped" in out and "no PostgreSQL at" in out, out


def test_the_default_is_the_documented_address() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert PG_DEFAULT == "postgresql://postgres@127.0.0.1:5432/test"
    assert "127.0.0.1:5432" in readme and "`postgres`" in readme and "`test`" in readme
