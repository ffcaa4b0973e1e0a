"""/ui/ledger: the bureau and auditors see entries, actors and verification runs; every other role sees
only the public checkpoint (the signed tree head)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lab.catalog.service import CatalogImporter
from lab.runtime import Runtime
from lab.web import auth
from lab.web.views.ledger import run_verification
from tests.conftest import HubHandle
from tests.integration.test_catalog_import import POLICY, write_health_csv

pytestmark = [pytest.mark.integration, pytest.mark.hub]
P = "/services/lab-api"
STEWARD = "steward-ledger-page"  # the actor of the import, a name no page text contains otherwise


@pytest.fixture
def web(api: Any, runtime: Runtime, tmp_path: Path) -> Any:
    path = write_health_csv(tmp_path / "h.csv", 30)
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        CatalogImporter(s, runtime.store, ledger).import_file(path, POLICY, STEWARD)
        run_verification(runtime.settings, ledger, "auditor-ledger-page")
    api.follow_redirects = False
    return api


def _page(web: Any, runtime: Runtime, hub: HubHandle, user: str, groups: list[str]) -> str:
    session = auth.WebSession.new(hub.token_for(user, groups), user)
    web.cookies.set(auth.SESSION_COOKIE, session.cookie(runtime.settings))
    r = web.get(f"{P}/ui/ledger", params={"lang": "en"})
    assert r.status_code == 200
    return str(r.text)


@pytest.mark.parametrize(("user", "groups"), [("alice", ["operator"]), ("steward1", ["steward"])])
def test_others_see_only_the_public_checkpoint(
    web: Any, runtime: Runtime, hub: HubHandle, user: str, groups: list[str]
) -> None:
    text = _page(web, runtime, hub, user, groups)
    with runtime.transaction() as s:
        head = runtime.ledger(s).head()
    assert head.root_hash in text and head.signature in text  # the checkpoint itself
    assert STEWARD not in text and "auditor-ledger-page" not in text  # no actor
    assert "Latest entries" not in text and "Entries by kind" not in text


@pytest.mark.parametrize(("user", "groups"), [("bureau1", ["bureau"]), ("auditor1", ["auditor"])])
def test_bureau_and_auditors_see_entries_and_actors(
    web: Any, runtime: Runtime, hub: HubHandle, user: str, groups: list[str]
) -> None:
    text = _page(web, runtime, hub, user, groups)
    assert STEWARD in text and "auditor-ledger-page" in text
    assert "Latest entries" in text and "Entries by kind" in text
