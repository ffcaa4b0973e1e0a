"""A project id is no existence oracle: a non-member gets the same answer for another project's id as
for an id that does not exist, on every route that takes a project id (in the path or the query),
through the API and the pages.

The check enumerates the app's routes with a project id in the path — the three channels' included
(``/api/v1/projects/{project}/{dp,psi,he}/…``) — so a new route cannot slip by.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from lab.runtime import Runtime
from lab.web import auth
from tests.conftest import HubHandle
from tests.integration._dp import dp_project, import_dp_sample

pytestmark = [pytest.mark.integration, pytest.mark.hub]
P = "/services/lab-api"

SELECT = {"dataset": "population", "select": [{"agg": "count"}], "epsilon": "0.1"}
PSI_SESSION = {"dataset": "population", "column": "resident_id", "mode": "cardinality", "size": 150}
HE_CALL = {"context": "hc_" + "0" * 32, "records": 10, "model": "credit_score_v1"}
FRAME = {"content-type": "application/vnd.lab.he-frame"}
PROTOBUF = {"content-type": "application/x-protobuf; messageType=lab.psi.v1.Envelope"}
S, C, X = "psis_" + "0" * 32, "hc_" + "0" * 32, "hx_" + "0" * 32  # a session, context and call id
#: a plausible request for each (method, path) with a project id in the path; ``{p}`` is the id and
#: ``url`` the path to request when the template holds other parameters
PATH_CASES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/api/v1/projects/{p}"): {},
    ("GET", "/api/v1/projects/{p}/budget"): {},
    ("POST", "/api/v1/projects/{p}/check"): {
        "json": {"dataset": "population", "channel": "dp", "params": {"epsilon": "0.1"}}
    },
    ("POST", "/api/v1/projects/{p}/review"): {"json": {"decision": "approve", "reason": "ok"}},
    ("POST", "/api/v1/projects/{p}/resubmit"): {"json": {"note": "again"}},
    ("POST", "/api/v1/projects/{p}/suspend"): {"json": {"reason": "x"}},
    ("POST", "/api/v1/projects/{p}/resume"): {"json": {"reason": "x"}},
    ("POST", "/api/v1/projects/{p}/end"): {"json": {"reason": "x"}},
    ("POST", "/api/v1/projects/{p}/members"): {"json": {"users": ["bob"], "reason": "x"}},
    ("DELETE", "/api/v1/projects/{p}/members"): {"json": {"users": ["alice"], "reason": "x"}},
    ("POST", "/api/v1/projects/{p}/dp/query"): {"json": SELECT},
    ("POST", "/api/v1/projects/{p}/dp/preview"): {"json": SELECT},
    ("POST", "/api/v1/projects/{p}/dp/tables"): {
        "json": {"dataset": "population", "statistic": {"agg": "count"}, "dims": ["town"], "epsilon": "0.1"}
    },
    ("POST", "/api/v1/projects/{p}/dp/train"): {
        "json": {
            "dataset": "population",
            "model": "linear",
            "features": ["age"],
            "target": "monthly_income",
            "epsilon": "0.1",
        }
    },
    ("GET", "/api/v1/projects/{p}/dp/models"): {},
    ("GET", "/api/v1/projects/{p}/dp/tables"): {},
    ("POST", "/api/v1/projects/{p}/psi/sessions"): {"json": PSI_SESSION},
    ("GET", "/api/v1/projects/{p}/psi/sessions/{session_id}"): {
        "url": f"/api/v1/projects/{{p}}/psi/sessions/{S}"
    },
    ("GET", "/api/v1/projects/{p}/psi/sessions/{session_id}/setup"): {
        "url": f"/api/v1/projects/{{p}}/psi/sessions/{S}/setup"
    },
    ("POST", "/api/v1/projects/{p}/psi/sessions/{session_id}/request"): {
        "url": f"/api/v1/projects/{{p}}/psi/sessions/{S}/request",
        "content": b"\x08\x01",
        "headers": PROTOBUF,
    },
    ("POST", "/api/v1/projects/{p}/psi/sessions/{session_id}/cohort"): {
        "url": f"/api/v1/projects/{{p}}/psi/sessions/{S}/cohort",
        "content": b"\x08\x01",
        "headers": PROTOBUF,
    },
    ("POST", "/api/v1/projects/{p}/he/contexts"): {
        "params": {"param_set": "ckks-8192"},
        "content": b"not a context",
        "headers": {"content-type": "application/octet-stream"},
    },
    ("GET", "/api/v1/projects/{p}/he/contexts"): {},
    ("DELETE", "/api/v1/projects/{p}/he/contexts/{context_id}"): {
        "url": f"/api/v1/projects/{{p}}/he/contexts/{C}"
    },
    ("GET", "/api/v1/projects/{p}/he/models"): {},
    ("GET", "/api/v1/projects/{p}/he/tables"): {},
    ("POST", "/api/v1/projects/{p}/he/plan/{op}"): {
        "url": "/api/v1/projects/{p}/he/plan/score",
        "json": HE_CALL,
    },
    ("POST", "/api/v1/projects/{p}/he/score"): {"content": b"LHE1", "headers": FRAME},
    ("POST", "/api/v1/projects/{p}/he/lookup"): {"content": b"LHE1", "headers": FRAME},
    ("POST", "/api/v1/projects/{p}/he/calls/{op}"): {
        "url": "/api/v1/projects/{p}/he/calls/score",
        "json": HE_CALL,
    },
    ("PUT", "/api/v1/projects/{p}/he/calls/{call_id}/parts/{part}"): {
        "url": f"/api/v1/projects/{{p}}/he/calls/{X}/parts/0",
        "content": b"LHE1",
        "headers": FRAME,
    },
    ("POST", "/api/v1/projects/{p}/he/calls/{call_id}/commit"): {
        "url": f"/api/v1/projects/{{p}}/he/calls/{X}/commit"
    },
    ("DELETE", "/api/v1/projects/{p}/he/calls/{call_id}"): {"url": f"/api/v1/projects/{{p}}/he/calls/{X}"},
}
#: routes that take the project id in a body or the query
OTHER_CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "POST",
        "/api/v1/products",
        {
            "data": {
                "metadata": '{"project": "{p}", "name": "r", "type": "report", "derived_from": ["dr_x"]}'
            },
            "files": {"artifact": ("r.csv", b"town,n\n1,2\n", "text/csv")},
        },
    ),
    ("GET", "/api/v1/records", {"params": {"project": "{p}"}}),
    ("GET", "/api/v1/products", {"params": {"project": "{p}"}}),
]


def _fill(value: Any, pid: str) -> Any:
    if isinstance(value, str):
        return value.replace("{p}", pid)
    if isinstance(value, dict):
        return {k: _fill(v, pid) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, pid) for v in value]
    return value


def _answer(api: Any, token: str, method: str, path: str, kw: dict[str, Any], pid: str) -> tuple[int, Any]:
    kw = _fill(kw, pid)
    headers = {**kw.pop("headers", {}), "Authorization": f"token {token}"}
    url = kw.pop("url", path)
    r = api.request(method, url.replace("{p}", pid), headers=headers, **kw)
    body = r.json() if r.headers.get("content-type", "").endswith("json") else r.text
    if isinstance(body, dict):  # the id itself may be echoed; everything else must match
        body = {k: v.replace(pid, "<id>") if isinstance(v, str) else v for k, v in body.items()}
        body.pop("instance", None)
    return r.status_code, body


@pytest.fixture
def world(api: Any, runtime: Runtime, hub: HubHandle) -> dict[str, str]:
    import_dp_sample(runtime, ("population",))
    return {
        "project": dp_project(runtime, ("population",)),
        "unknown": "p" + uuid.uuid4().hex[:10],
        "bob": hub.token_for("bob", ["operator"]),
    }


def test_every_route_with_a_project_in_the_path_is_covered(api: Any) -> None:
    routes = {
        (method.upper(), path.replace("{project_id}", "{p}").replace("{project}", "{p}"))
        for path, ops in api.app.openapi()["paths"].items()
        if "{project" in path
        for method in ops
    }
    assert routes == set(PATH_CASES), "add the new route to PATH_CASES"


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [(m, p, kw) for (m, p), kw in PATH_CASES.items()] + OTHER_CASES,
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_non_member_cannot_tell_another_project_from_none(
    api: Any, world: dict[str, str], method: str, path: str, kw: dict[str, Any]
) -> None:
    theirs = _answer(api, world["bob"], method, path, kw, world["project"])
    unknown = _answer(api, world["bob"], method, path, kw, world["unknown"])
    assert theirs == unknown
    assert theirs[0] in (200, 403, 404, 422), theirs  # 200: an empty list for both; 403: a role refusal


def test_the_project_page_answers_the_same(
    api: Any, runtime: Runtime, hub: HubHandle, world: dict[str, str]
) -> None:
    session = auth.WebSession.new(world["bob"], "bob")
    api.cookies.set(auth.SESSION_COOKIE, session.cookie(runtime.settings))
    api.follow_redirects = False
    got = {pid: api.get(f"{P}/ui/projects/{pid}") for pid in (world["project"], world["unknown"])}
    a, b = got.values()
    assert a.status_code == b.status_code == 404
    assert a.text.replace(world["project"], "<id>") == b.text.replace(world["unknown"], "<id>")
