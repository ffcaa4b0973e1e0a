"""The pages' message catalog is complete: both languages, every key the templates and views use,
and a label for every value of the domain enums the pages show."""

from __future__ import annotations

import ast
import re
import string
from enum import StrEnum
from pathlib import Path

import pytest

from lab.catalog.policy import Classification, ColumnRole, OpenAttribute, PsiMode, ShareAttribute
from lab.identity import Role
from lab.ledger.entries import KINDS
from lab.products.models import ProductStatus, ProductType, VersionStatus
from lab.projects.models import ProjectStatus
from lab.web.i18n import EN, LANGS, MESSAGES, ZH, Translator
from lab.web.pages import ERROR_KEYS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lab", "psi_service", "he_compute", "witness")
WEB_SOURCES = [
    *sorted((ROOT / "lab" / "web" / "templates").glob("*.html")),
    *sorted((ROOT / "lab" / "web").rglob("*.py")),
    ROOT / "lab" / "api" / "routes" / "web.py",
]
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z0-9_.\-]+)["']""")
PREFIX_KEY = re.compile(r"""\bt\.of\(\s*["']([a-z_]+)["']""")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys() -> None:
    assert set(MESSAGES) == set(LANGS) == {"zh", "en"}
    assert sorted(set(ZH) - set(EN)) == [], "keys missing in English"
    assert sorted(set(EN) - set(ZH)) == [], "keys missing in Chinese"


def test_every_message_is_translated_with_the_same_placeholders() -> None:
    problems = []
    for key in sorted(ZH):
        zh, en = ZH[key], EN[key]
        if not (zh.strip() and en.strip()):
            problems.append(f"{key}: empty")
        elif _fields(zh) != _fields(en):
            problems.append(f"{key}: placeholders differ")
        elif key != "lang.switch" and not key.startswith("common.") and CJK.search(en):
            problems.append(f"{key}: the English text contains Chinese")
    assert not problems, problems


def test_every_key_used_by_templates_and_views_exists() -> None:
    used: dict[str, str] = {}
    for path in WEB_SOURCES:
        for key in LITERAL_KEY.findall(path.read_text(encoding="utf-8")):
            used.setdefault(key, path.name)
    missing = {k: f for k, f in used.items() if k not in ZH}
    assert not missing, f"untranslated keys: {missing}"
    assert len(used) > 150


def test_every_prefix_used_by_templates_has_messages() -> None:
    prefixes = set()
    for path in WEB_SOURCES:
        prefixes |= set(PREFIX_KEY.findall(path.read_text(encoding="utf-8")))
    for prefix in prefixes:
        assert any(k.startswith(prefix + ".") for k in ZH), prefix


FAMILIES: list[tuple[str, type[StrEnum] | list[str]]] = [
    ("status", ProjectStatus),
    ("role", Role),
    ("class", Classification),
    ("share", ShareAttribute),
    ("open", OpenAttribute),
    ("colrole", ColumnRole),
    ("psimode", PsiMode),
    ("pstatus", ProductStatus),
    ("vstatus", VersionStatus),
    ("ptype", ProductType),
    ("channel", ["dp", "psi", "he"]),
    ("coltype", ["string", "integer", "float", "date"]),
    ("cycle", ["realtime", "daily", "weekly", "monthly", "quarterly", "yearly", "irregular"]),
    ("checkstatus", ["pass", "fail", "skipped"]),
    ("action", ["apply", "resubmit", "approve", "reject", "changes", "suspend", "resume", "end", "expire"]),
    ("done", ["approve", "reject", "changes", "suspend", "resume", "end", "verify", "revoke"]),
]


@pytest.mark.parametrize(("prefix", "values"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_domain_value_has_a_label(prefix: str, values: type[StrEnum] | list[str]) -> None:
    names = [v.value for v in values] if isinstance(values, type) else values
    missing = [n for n in names if f"{prefix}.{n}" not in ZH]
    assert not missing, f"{prefix}: {missing}"


def _parameter_values(trees: dict[Path, ast.Module], function: str, parameter: str) -> set[str]:
    """The literals ``parameter`` takes in ``function``: its default and every ``parameter=`` passed."""
    values: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
                args = [*node.args.args, *node.args.kwonlyargs]
                defaults = [*([None] * (len(node.args.args) - len(node.args.defaults))), *node.args.defaults]
                defaults += node.args.kw_defaults
                for arg, default in zip(args, defaults, strict=True):
                    if arg.arg == parameter and isinstance(default, ast.Constant):
                        values.add(default.value)
            elif isinstance(node, ast.Call):
                name = (
                    node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                )
                values |= {
                    k.value.value
                    for k in node.keywords
                    if name == function and k.arg == parameter and isinstance(k.value, ast.Constant)
                }
    return values


def emitted_ledger_kinds() -> tuple[dict[str, str], list[str]]:
    """Kinds passed to a ledger's ``append``/``append_many`` anywhere in the source (kind -> first place),
    and the calls whose kind could not be read from the source.

    A call counts when its receiver names a ledger (``ledger.append``, ``self.rt.ledger(s).append``).
    A kind given as a variable is resolved when it is a parameter of the enclosing function: its
    default and the literals callers pass for it.
    """
    trees = {
        p: ast.parse(p.read_text(encoding="utf-8")) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
    }
    kinds: dict[str, str] = {}
    unresolved: list[str] = []
    for path, tree in trees.items():
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("append", "append_many")
                and "ledger" in ast.unparse(node.func.value).lower()
                and node.args
            ):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            arg = node.args[0]
            firsts = [arg]  # append(kind, body, actor)
            if node.func.attr == "append_many":  # append_many([(kind, body, actor), ...])
                listed = isinstance(arg, ast.List) and all(isinstance(e, ast.Tuple) for e in arg.elts)
                firsts = [e.elts[0] for e in arg.elts if isinstance(e, ast.Tuple)] if listed else [arg]
            for first in firsts:
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    kinds.setdefault(first.value, where)
                    continue
                enclosing = [f for f in functions if f.lineno <= node.lineno <= (f.end_lineno or 0)]
                found = (
                    _parameter_values(trees, enclosing[-1].name, first.id)
                    if enclosing and isinstance(first, ast.Name)
                    else set()
                )
                for kind in found:
                    kinds.setdefault(kind, where)
                if not found:
                    unresolved.append(f"{where}: {ast.unparse(first)}")
    return kinds, unresolved


def test_ledger_kinds_are_the_emitted_ones_and_have_labels() -> None:
    emitted, unresolved = emitted_ledger_kinds()
    assert not unresolved, f"ledger appends whose kind the test cannot read: {unresolved}"
    assert {"catalog.dataset_version", "project.transition", "project.disposal", "derived.record"} <= set(
        emitted
    )
    assert sorted(set(emitted) - set(KINDS)) == [], "appended but not declared in lab.ledger.entries.KINDS"
    assert sorted(set(KINDS) - set(emitted)) == [], "declared in KINDS but never appended"
    missing = {k: where for k, where in emitted.items() if f"kind.{k}" not in ZH or f"kind.{k}" not in EN}
    assert not missing, f"ledger kinds without zh-CN and English labels: {missing}"
    stale = sorted(k for k in ZH if k.startswith("kind.") and k.removeprefix("kind.") not in KINDS)
    assert not stale, f"labels of kinds nothing appends: {stale}"


def test_error_pages_have_labels() -> None:
    for title, text in [*ERROR_KEYS.values(), ("error.500", "error.500.text")]:
        assert title in ZH and text in ZH


def test_translator_formats_and_falls_back() -> None:
    assert Translator("zh")("session.user", name="bureau1") == "当前用户：bureau1"
    assert Translator("en")("common.days", n=3) == "3 days"
    assert Translator("fr").lang == "zh"  # unknown language: the default
    assert Translator("en").of("status", "no_such_state") == "no_such_state"
    assert Translator("en")("no.such.key") == "no.such.key"
