"""Every ``>>>`` example in ``lab``, ``psi_service``, ``he_compute`` and ``witness`` runs and shows behaviour.

An example is a doctest run here, one test per module that has any; a sketch that cannot run
without services (a database, S3, a Hub) is written as a literal block (``::``), not with ``>>>``.
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lab", "psi_service", "he_compute", "witness")
#: Modules that cannot be imported on their own, and why.
NOT_IMPORTABLE = {
    # Alembic's environment script: it runs the migrations when imported and needs Alembic's
    # ``context``, which exists only inside ``alembic upgrade``.
    "lab.db.migrations.env": "runs the migrations on import",
}
PSEUDO = re.compile(r"^(#|\w+(\.\w+)*\.__name__$)")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {_module(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}
WITH_EXAMPLES = sorted(m for m, p in SOURCES.items() if ">>>" in p.read_text(encoding="utf-8"))


def test_modules_are_found() -> None:
    assert len(SOURCES) > 150
    assert len(WITH_EXAMPLES) > 30
    assert set(NOT_IMPORTABLE) <= set(SOURCES), "an exclusion names a module that no longer exists"
    assert not set(NOT_IMPORTABLE) & set(WITH_EXAMPLES), "an excluded module has examples that would not run"


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_examples_run(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # examples read the sample policies as ``policies/<dataset>.yaml``
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module)
    examples = [e for t in tests for e in t.examples]
    assert examples, f"{name} has '>>>' outside its docstrings, where no doctest runs it"
    pseudo = [e.source.strip() for e in examples if PSEUDO.match(e.source.strip())]
    assert not pseudo, f"comment-only or __name__ examples show no behaviour: {pseudo}"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (output above)"


def test_pseudo_examples_are_recognized() -> None:
    assert PSEUDO.match("# c = lc.connect()") and PSEUDO.match("DuckEngine.__name__")
    assert not PSEUDO.match("len(capped('x'))")


def test_every_module_imports() -> None:
    """Every module (bar the stated exceptions) imports with the installed extras."""
    failed = {}
    for name in SOURCES:
        if name in NOT_IMPORTABLE:
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # collected, reported together
            failed[name] = repr(exc)
    assert not failed, failed
