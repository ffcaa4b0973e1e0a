"""Property-based fuzzing of the lab API against its own OpenAPI schema (schemathesis + hypothesis).

Runs on SQLite only: the properties are about the HTTP surface (validation, error mapping, schema
conformance), not the database; the targeted attacks of ``test_attacks.py`` run on both databases.

The app is called in-process (schemathesis' ASGI transport: no socket) with real Hub tokens of
``bureau1``, ``alice`` (operator, member of an active DP project), ``steward1`` and ``auditor1``.
For every operation, positive and negative cases are drawn; path parameters are often replaced by
ids that exist (a project, a derived record, a product, a registration number), so the handlers
behind the 404s run too. Every response must:

* never be a 5xx, nor outlast the request timeout (a hang);
* if 4xx, be ``application/problem+json`` with ``status`` (equal to the HTTP status), ``title`` and
  ``detail``;
* conform to the schema: documented status code, content type, headers and body.

The HTML pages (``/ui/...``, ``/oauth_callback``) are not in the schema; they are fuzzed for the
no-5xx rule only, logged in as the bureau with a valid CSRF token (and sometimes without).
Budgets: a few examples per operation and mode (``FUZZ_EXAMPLES`` raises them for a longer hunt),
so this file stays well under 90 s.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lab.projects.models import ProjectStatus
from lab.runtime import Runtime
from lab.web import auth
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._dp import dp_grant, import_dp_sample

pytestmark = [pytest.mark.integration, pytest.mark.hub]
# The HE channel's binary frames: send whatever is generated as opaque bytes.
schemathesis.serializer.alias("application/vnd.lab.he-frame", "application/octet-stream")

ROLES = {"bureau1": ["bureau"], "alice": ["operator"], "steward1": ["steward"], "auditor1": ["auditor"]}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))  # per operation and generation mode
TIMEOUT = 20.0  # seconds; a request slower than this is a hang
MAX_PROBLEM_BYTES = 8192  # no problem body grows with the input (lab.api.problems caps what it echoes)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
SETTINGS = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


@dataclass
class World:
    """Who calls and which ids exist (by path-parameter name)."""

    tokens: dict[str, str]
    known: dict[str, list[str]] = field(default_factory=dict)


def seed_world(api: Any, hub: HubHandle, runtime: Runtime) -> World:
    """Datasets, an active DP project of alice's with a derived record and a registered product,
    a pending application (for the review forms), and a token per role."""
    import_dp_sample(runtime)
    project = active_project(runtime, {"population": {"dp": dp_grant()}}, members=["alice"])
    pending = active_project(
        runtime,
        {"health_visits": {"dp": dp_grant()}},
        members=["alice"],
        status=ProjectStatus.pending,
    )
    tokens = {user: hub.token_for(user, groups) for user, groups in ROLES.items()}
    alice = {"Authorization": f"token {tokens['alice']}"}
    query = {"dataset": "population", "select": [{"agg": "count"}], "group_by": ["town"], "epsilon": "0.1"}
    r = api.post(f"/api/v1/projects/{project}/dp/query", json=query, headers=alice)
    assert r.status_code == 200, r.text
    record = r.json()["record_id"]
    meta = {"project": project, "name": "报告", "type": "report", "derived_from": [record]}
    r = api.post(
        "/api/v1/products",
        data={"metadata": json.dumps(meta)},
        files={"artifact": ("towns.csv", "town,count\n城桥镇,40\n", "text/csv")},
        headers=alice,
    )
    assert r.status_code == 201, r.text
    product = r.json()["id"]
    bureau = {"Authorization": f"token {tokens['bureau1']}"}
    r = api.post(f"/api/v1/products/{product}/review", json={"decision": "approve"}, headers=bureau)
    assert r.status_code == 200, r.text
    number = r.json()["registration_number"]
    known = {
        "project_id": [pending, project],
        "project": [project],
        "dataset": ["population", "health_visits"],
        "index": ["0", "1"],
        "record_id": [record],
        "product_id": [product],
        "registration_number": [number],
    }
    return World(tokens, known)


def check_problem(status: int, content_type: str, body: bytes, what: str) -> None:
    """A 4xx must be a problem document (RFC 9457) whose status matches the response's."""
    assert content_type.split(";")[0].strip() == "application/problem+json", f"{what}: {content_type}"
    doc = json.loads(body)
    assert isinstance(doc, dict), what
    assert doc.get("status") == status, f"{what}: problem status {doc.get('status')} != {status}"
    for member in ("title", "detail"):
        assert isinstance(doc.get(member), str) and doc[member], f"{what}: problem has no {member}"
    assert len(body) <= MAX_PROBLEM_BYTES, f"{what}: a {len(body)}-byte problem body echoes its input"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_api_conforms_to_its_schema_and_never_fails(api: Any, hub: HubHandle, runtime: Runtime) -> None:
    world = seed_world(api, hub, runtime)
    schema = schemathesis.openapi.from_dict(api.get("/openapi.json").json())
    client = ASGIClient(api.app)  # not entered: the api fixture already runs the app's lifespan
    failures: list[str] = []
    started = time.monotonic()
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_operation(op, mode, client, world)
            except hypothesis.errors.Unsatisfiable:
                continue  # nothing to negate (no parameters, or only free-form strings)
            except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failures
                failures.append(f"{op.method.upper()} {op.path} [{mode.value}]: {type(exc).__name__}: {exc}")
    elapsed = time.monotonic() - started
    assert not failures, f"{len(failures)} failing operations ({elapsed:.0f} s):\n" + "\n\n".join(failures)


def fuzz_operation(op: Any, mode: GenerationMode, client: ASGIClient, world: World) -> None:
    @SETTINGS
    @given(case=op.as_strategy(generation_mode=mode), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        for name in list(case.path_parameters or {}):
            if name in world.known and data.draw(st.integers(0, 3), label=f"known {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(world.known[name]), label=name)
        user = data.draw(st.sampled_from(sorted(world.tokens)), label="user")
        headers = {"Authorization": f"token {world.tokens[user]}"}
        what = f"{case.method} {case.formatted_path} as {user}"
        response = case.call(base_url="http://testserver", session=client, headers=headers, timeout=TIMEOUT)
        assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
        if 400 <= response.status_code < 500:
            content_type = (response.headers.get("content-type") or [""])[0]
            check_problem(response.status_code, content_type, response.content, what)
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


# -- numbers at the edges: every number a DP spec carries, replaced by an edge value -------------
#: Decimal strings that overflow a decimal context, vanish, or are not numbers at all; JSON numbers
#: beyond a double; pairs that differ as decimals but are equal as floats.
EDGE_TEXT = st.sampled_from(
    [
        *("1e5000000", "-1e5000000", "1e-5000000", "1e999999999", "NaN", "-Infinity", "-0", "9" * 5000),
        *("0." + "0" * 3000 + "1", "0.10000000000000001", "1E+308", "4.9e-324", "1e400", " 1", "0x10"),
    ]
)
EDGE_NUMBER = (
    EDGE_TEXT
    | st.builds(lambda m, e: f"{m}e{e}", st.integers(-(10**6), 10**6), st.integers(-(10**9), 10**9))
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=True, allow_infinity=True).map(str)
    | st.integers(-(10**40), 10**40)
)
EQUAL_AS_FLOATS = st.floats(-1e15, 1e15, allow_nan=False).map(lambda x: [repr(x), repr(x) + "00000000001"])
EDGE_PAIR = EQUAL_AS_FLOATS | st.lists(EDGE_NUMBER, min_size=2, max_size=2)
NUMERIC_KEYS = ("epsilon", "delta", "bounds", "quantiles", "value")


def with_edges(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """``value`` (a generated request body) with some of its numbers replaced by edge values."""
    if depth > 6:
        return value
    if isinstance(value, list):
        return [with_edges(v, data, depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, v in value.items():
        if key in NUMERIC_KEYS and data.draw(st.booleans(), label=f"edge {key}"):
            pair = isinstance(v, list) or key == "bounds"
            v = data.draw(EDGE_PAIR if pair else EDGE_NUMBER, label=key)
        elif key == "bounds" and isinstance(v, dict):
            v = {col: data.draw(EDGE_PAIR, label=f"bounds.{col}") for col in v}
        out[key] = with_edges(v, data, depth + 1)
    return out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_dp_numbers_at_the_edges_never_fail(api: Any, hub: HubHandle, runtime: Runtime) -> None:
    """Schemathesis bodies for the DP operations, their numbers swapped for edge values: a 4xx problem
    with a bounded body (or a 200 when the value happens to be fine), never a 5xx or a hang."""
    world = seed_world(api, hub, runtime)
    schema = schemathesis.openapi.from_dict(api.get("/openapi.json").json())
    client = ASGIClient(api.app)
    failures: list[str] = []
    ops = [r.ok() for r in schema.get_all_operations()]
    dp_ops = [op for op in ops if "/dp/" in op.path and op.method.upper() == "POST"]
    assert len(dp_ops) >= 4, [op.path for op in dp_ops]
    for op in dp_ops:
        try:
            fuzz_edges(op, client, world)
        except hypothesis.errors.Unsatisfiable:
            continue
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"POST {op.path}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)


def fuzz_edges(op: Any, client: ASGIClient, world: World) -> None:
    @hypothesis.settings(SETTINGS, max_examples=4 * EXAMPLES)
    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE), data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        case.path_parameters = {**(case.path_parameters or {}), "project": world.known["project"][0]}
        if isinstance(case.body, dict):
            case.body = with_edges(case.body, data)
        headers = {"Authorization": f"token {world.tokens['alice']}"}
        what = f"POST {case.formatted_path} {json.dumps(case.body, default=str)[:300]}"
        started = time.monotonic()
        response = case.call(base_url="http://testserver", session=client, headers=headers, timeout=TIMEOUT)
        assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
        assert time.monotonic() - started < TIMEOUT, f"{what}: a hang"
        if 400 <= response.status_code < 500:
            content_type = (response.headers.get("content-type") or [""])[0]
            check_problem(response.status_code, content_type, response.content, what)

    run()


# -- the HTML pages: no 5xx whatever the path, query, cookie or form ------------------------------
FORM_KEYS = ["action", "reason", "decision", "version", "days", "grants", "keep.health_visits.dp"]
QUERY_KEYS = ["status", "done", "lang", "next", "code", "state", "error", "version"]
texts = st.text(max_size=40) | st.sampled_from(["", "0", "²", "9" * 5000, "approve", "end", "en", "zh"])
cookies = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";,"), max_size=300
)


def page_routes() -> list[tuple[str, str]]:
    from lab.api.routes.web import router

    routes = [r for r in router.routes if isinstance(r, APIRoute)]
    return sorted((m, r.path) for r in routes for m in r.methods if m in ("GET", "POST"))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pages_never_fail(api: Any, hub: HubHandle, runtime: Runtime) -> None:
    world = seed_world(api, hub, runtime)
    api.follow_redirects = False
    session = auth.WebSession.new(world.tokens["bureau1"], "bureau1")
    cookie = session.cookie(runtime.settings)
    csrf = auth.csrf_token(runtime.settings, session)
    failures: list[str] = []
    routes = page_routes()
    assert len(routes) > 15, routes
    for method, path in routes:
        try:
            fuzz_page(api, world, method, path, cookie, csrf)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{method} {path}: {type(exc).__name__}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)


def fuzz_page(api: Any, world: World, method: str, path: str, cookie: str, csrf: str) -> None:
    @hypothesis.settings(SETTINGS, max_examples=4 * EXAMPLES)  # pages are cheap
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        url = path
        for name in re.findall(r"{(\w+)}", path):
            value = data.draw(st.sampled_from(world.known.get(name, ["x"])) | texts, label=name)
            url = url.replace(f"{{{name}}}", quote(value, safe="") or "x")
        params = data.draw(st.dictionaries(st.sampled_from(QUERY_KEYS), texts, max_size=3), label="query")
        api.cookies.clear()
        if data.draw(st.integers(0, 4), label="logged in"):
            api.cookies.set(auth.SESSION_COOKIE, cookie)
        else:
            api.cookies.set(auth.SESSION_COOKIE, data.draw(cookies, label="cookie") or "x")
        form = None
        if method == "POST":
            form = data.draw(st.dictionaries(st.sampled_from(FORM_KEYS), texts, max_size=5), label="form")
            if data.draw(st.integers(0, 4), label="csrf"):
                form["csrf_token"] = csrf
        started = time.monotonic()
        r = api.request(method, url, params=params, data=form)
        assert r.status_code < 500, f"{method} {url} {params} {form}: {r.status_code}"
        assert time.monotonic() - started < TIMEOUT, f"{method} {url}: a hang"

    run()
