"""The pages' message catalog is complete: both languages, every key the templates and views use,
and a label for every value of the domain enums the pages show."""

from __future__ import annotations

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


def test_ledger_kinds_and_error_pages_have_labels() -> None:
    base_kinds = ["ledger.genesis", "catalog.dataset_version", "project.transition", "budget.spend"]
    assert all(k in KINDS and f"kind.{k}" in ZH for k in base_kinds)
    for title, text in [*ERROR_KEYS.values(), ("error.500", "error.500.text")]:
        assert title in ZH and text in ZH


def test_translator_formats_and_falls_back() -> None:
    assert Translator("zh")("session.user", name="bureau1") == "当前用户：bureau1"
    assert Translator("en")("common.days", n=3) == "3 days"
    assert Translator("fr").lang == "zh"  # unknown language: the default
    assert Translator("en").of("status", "no_such_state") == "no_such_state"
    assert Translator("en")("no.such.key") == "no.such.key"
