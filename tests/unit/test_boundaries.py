"""Import boundaries: the contracts of ``.importlinter``, and what importing the client really loads.

The contracts (layers, channels independent of each other, a client and a shared module without
server code, a witness without the lab) are checked statically by import-linter over the whole
import graph, lazy imports included; the subprocess tests check at run time what a notebook pays
for ``import lab.client`` and for building a ``Client``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ("sqlalchemy", "fastapi", "starlette", "pydantic_settings", "lab.db", "lab.ledger", "lab.api")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.strip()


def test_import_contracts_are_kept() -> None:
    """``lint-imports`` in its own process (it rewires the output streams), without a cache."""
    lint = Path(sys.executable).with_name("lint-imports")
    args = [str(lint), "--config", str(ROOT / ".importlinter"), "--no-cache", "--no-logo"]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_importing_the_client_loads_no_server_module() -> None:
    code = f"import lab.client, sys\nprint(sorted(m for m in sys.modules if m.startswith({SERVER!r})))"
    assert _run(code) == "[]"


def test_building_a_client_and_its_psi_side_load_no_server_module() -> None:
    """A ``Client`` with every sub-API, and the operator-side PSI modules it imports on first use."""
    code = (
        "import sys, lab.client\n"
        "c = lab.client.Client('http://127.0.0.1:1', 'no-token')\n"
        "import psi_service.normalize, psi_service.operator, psi_service.protocol\n"
        "c.close()\n"
        f"print(sorted(m for m in sys.modules if m.startswith({SERVER!r})))"
    )
    assert _run(code) == "[]"


def test_the_shared_module_needs_only_the_standard_library_and_cryptography() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import lab.shared.standalone, lab.shared.merkle, lab.shared.certificates, lab.shared.pins\n"
        "new = set(sys.modules) - before\n"
        "tops = {m.split('.')[0] for m in new} - set(sys.stdlib_module_names)\n"
        "print(sorted(tops | {m for m in new if m.startswith('lab.') and not m.startswith('lab.shared')}))"
    )
    loaded = set(_run(code).strip("[]").replace("'", "").split(", "))
    # cryptography's native bindings load as _cffi_backend / _openssl
    assert loaded <= {"lab", "cryptography", "_cffi_backend", "_openssl"}, loaded


def test_the_standalone_verifier_is_one_file_of_stdlib_and_cryptography() -> None:
    """``lab/shared/standalone.py`` is what an auditor copies alone (docs/ledger.md): no lab import."""
    tree = ast.parse((ROOT / "lab" / "shared" / "standalone.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    outside = {m for m in imported if m.split(".")[0] not in (*sys.stdlib_module_names, "cryptography")}
    assert outside == set()


def test_the_channel_entries_contract_fails_when_the_lab_reaches_a_channel_elsewhere(tmp_path: Path) -> None:
    """On a copy of the code, a web page importing PSI's server breaks the ``channel-entries``
    contract (and only that one: the layers allow lab.web above the channels)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("lab", "psi_service", "he_compute", "witness"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=skip)
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    lint = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo"]
    assert subprocess.run(lint, capture_output=True, text=True, cwd=tmp_path).returncode == 0
    (tmp_path / "lab" / "web" / "probe.py").write_text("from psi_service.server import PsiService\n")
    out = subprocess.run(lint, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1, out.stdout
    assert "only through their entries" in out.stdout and "1 broken" in out.stdout, out.stdout
    assert "lab.web.probe -> psi_service.server" in out.stdout, out.stdout
