"""Structure rules: the domain imports no web framework; the client's public surface is pinned."""

from __future__ import annotations

import ast
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ("fastapi", "starlette", "uvicorn")
#: Packages allowed to import a web framework: the API, the pages, and the process launchers.
WEB_LAYERS = ("lab/api/", "lab/web/", "lab/cli/", "lab/launcher/")


def _domain_files() -> list[Path]:
    files = []
    for pkg in ("lab", "psi_service", "he_compute"):
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(WEB_LAYERS) and "/migrations/" not in rel:
                files.append(path)
    return files


@pytest.mark.parametrize("path", _domain_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_domain_modules_import_no_web_framework(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in WEB, f"{path.relative_to(ROOT)} imports {name}"


def test_routers_stay_thin() -> None:
    for path in (ROOT / "lab" / "api" / "routes").glob("*.py"):
        lines = path.read_text(encoding="utf-8").count("\n")
        assert lines < 400, f"{path.name} has {lines} lines; move logic into a service"


def _package_files() -> list[Path]:
    return sorted(
        p for pkg in ("lab", "psi_service", "he_compute", "witness") for p in (ROOT / pkg).rglob("*.py")
    )


@pytest.mark.parametrize("path", _package_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nothing_is_wired_by_name(path: Path) -> None:
    """Routers, client sub-APIs, disposers and commands are plain imports: a typo is an ImportError."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Name) and node.id == "__import__":
            names = ["__import__"]
        else:
            continue
        found = [n for n in names if n.split(".")[0] in ("importlib", "pkgutil", "__import__")]
        assert not found, f"{path.relative_to(ROOT)}:{node.lineno} discovers modules by name: {found}"


def test_disposal_runs_every_channel_disposer() -> None:
    from he_compute.disposal import dispose_he
    from lab.projects.disposal import channel_disposers
    from psi_service.disposal import dispose_psi

    assert channel_disposers() == {"he.contexts": dispose_he, "psi.sessions": dispose_psi}


def test_client_public_surface_is_pinned() -> None:
    import lab.client as lc

    assert sorted(lc.__all__) == [
        "BadRequest",
        "BudgetExhausted",
        "Client",
        "Conflict",
        "Forbidden",
        "LabError",
        "NotFound",
        "NotInGrant",
        "PayloadTooLarge",
        "ProjectInactive",
        "QuotaExceeded",
        "ServerError",
        "TooManyRequests",
        "Unauthenticated",
        "connect",
    ]
    assert issubclass(lc.BudgetExhausted, lc.LabError) and issubclass(lc.NotInGrant, lc.Forbidden)


def test_client_capabilities_are_declared_typed_attributes() -> None:
    """Every sub-API is an annotated attribute built in ``__init__``; an unknown one is an AttributeError."""
    from typing import get_type_hints

    import lab.client as lc
    from lab.client._dp import DpAPI
    from lab.client._he import HeAPI
    from lab.client._psi import PsiAPI

    hints = get_type_hints(lc.Client)
    assert (hints["dp"], hints["psi"], hints["he"]) == (DpAPI, PsiAPI, HeAPI)
    capabilities = ["catalog", "ledger", "projects", "records", "dp", "psi", "he", "products"]
    assert all(name in hints for name in capabilities)
    with lc.Client("http://127.0.0.1:1", "no-token") as c:
        assert [type(getattr(c, name)).__name__ for name in capabilities] == [
            hints[name].__name__ for name in capabilities
        ]
        with pytest.raises(AttributeError):
            c.dpp  # type: ignore[attr-defined]  # noqa: B018


def test_configuration_reference_is_current() -> None:
    from lab.settings_doc import render

    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == render(), (
        "run: python -m lab.settings_doc > docs/configuration.md"
    )


def _setting_variables(model: type[Any], prefix: str) -> list[str]:
    """Every environment variable of the settings tree, walked here apart from the generator."""
    from pydantic import BaseModel

    names = []
    for name, field in model.model_fields.items():
        ann = field.annotation  # a group, or an optional group; a list of models is one JSON variable
        options = get_args(ann) if get_origin(ann) in (Union, UnionType) else (ann,)
        nested = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            names += _setting_variables(nested[0], f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_configuration_reference_lists_every_setting_of_the_tree() -> None:
    from lab.settings import Settings

    expected = _setting_variables(Settings, "LAB_")
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    listed = [line.split("`")[1] for line in text.splitlines() if line.startswith("| `LAB_")]
    assert sorted(listed) == sorted(expected), {
        "missing": sorted(set(expected) - set(listed)),
        "stale": sorted(set(listed) - set(expected)),
    }
    assert {"LAB_PSI__FPR", "LAB_HE__PROCESSES", "LAB_ADMISSION__WORKERS"} <= set(listed)


def test_psi_and_he_groups_read_their_older_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.settings import Settings

    monkeypatch.setenv("LAB_PSI_PART_ITEMS", "64")
    monkeypatch.setenv("LAB_HE_PROCESSES", "5")
    monkeypatch.setenv("LAB_HE__PROCESSES", "3")  # the nested form wins
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.psi.part_items, s.he.processes, s.he.task_seconds) == (64, 3, 120.0)


def test_free_port_blocks_never_name_an_invalid_port() -> None:
    from lab.storage.seaweed import GRPC_OFFSET, free_port_block

    for _ in range(20):
        base = free_port_block(4, 54000, 55535)
        assert base + 3 + GRPC_OFFSET <= 65535
