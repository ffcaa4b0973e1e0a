"""Problem types point at the lab itself: every ``type`` is ``<prefix>/problems/<code>`` and resolves to a
page with the meaning and the fix, in Chinese and English, for every LabError subclass."""

from __future__ import annotations

import html
import importlib
import pkgutil
from collections.abc import Iterator
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

import he_compute
import lab
import psi_service
from lab.api.main import create_app
from lab.api.problem_catalog import CATALOG, lab_error_codes
from lab.runtime import Runtime

pytestmark = [pytest.mark.integration]
P = "/services/lab-api"


def _load_every_module() -> None:
    """Import every module so that every LabError subclass is defined."""
    for pkg in (lab, psi_service, he_compute):
        for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if ".launcher" in mod.name or mod.name.endswith("__main__"):
                continue
            if mod.name == "lab.db.migrations.env":  # runs the migrations; only inside an Alembic run
                continue
            importlib.import_module(mod.name)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=runtime), base_url="http://testserver") as c:
        yield c


def test_every_lab_error_has_a_page_in_both_languages(client: TestClient) -> None:
    _load_every_module()
    errors = lab_error_codes()
    assert len(errors) > 30
    for code, cls in errors.items():
        assert code in CATALOG, f"{cls.__module__}.{cls.__name__} ({code}) has no problem page"
        entry = CATALOG[code]
        assert entry.status == cls.status and entry.en.title == cls.title, code
        for lang, text in (("zh", entry.zh), ("en", entry.en)):
            r = client.get(f"{P}/problems/{code}", params={"lang": lang})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), code
            page = html.unescape(r.text)
            assert text.title in page and text.meaning in page and text.fix in page, (code, lang)
            assert ('<html lang="zh-CN">' if lang == "zh" else '<html lang="en">') in r.text


@pytest.mark.parametrize("code", ["validation", "unstorable-value", "number-out-of-range", "internal"])
def test_the_handlers_own_problems_have_pages(client: TestClient, code: str) -> None:
    assert code in CATALOG
    assert client.get(f"{P}/problems/{code}", params={"lang": "zh"}).status_code == 200


def test_a_problem_type_resolves_against_the_url_that_returned_it(client: TestClient) -> None:
    for url in (f"{P}/api/v1/projects/nope", "/api/v1/projects/nope"):  # through the Hub prefix or not
        r = client.get(url)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        kind = r.json()["type"]
        assert kind == ("/services/lab-api" if url.startswith(P) else "") + "/problems/unauthenticated"
        page = client.get(urljoin(str(r.url), kind), params={"lang": "en"})
        assert page.status_code == 200 and "Authentication required" in page.text


def test_pages_as_json_the_index_and_an_unknown_code(client: TestClient) -> None:
    r = client.get(f"{P}/problems/budget-exhausted", headers={"Accept": "application/json"})
    assert r.json()["title"] == "隐私预算不足" and r.json()["status"] == 409 and r.json()["fix"]
    index = client.get(f"{P}/problems", params={"lang": "en"})
    assert index.status_code == 200
    assert all(f"{P}/problems/{code}" in index.text for code in CATALOG)
    assert client.get(f"{P}/problems/no-such-problem").status_code == 404
