"""Attacks on the PSI channel are refused with 4xx problems, charge nothing and leave the service answering.

They run on ``tax_credit`` (open): cardinality, whose request flow they attack, is open-data only.

The requests are built by hand (``psi_service.operator`` + ``psi_service.protocol``) so that they can be
replayed, truncated, re-framed and sent across projects (the path's project decides: another project's
session is not found, a body or envelope naming another project is refused).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lab.identifiers import NORMALIZERS
from psi_service import operator
from psi_service.protocol import MEDIA_TYPE, Frame, build_request, decode, encode, parse_response
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._psi import charges, column, grants, import_psi_sample, lab_client, operator_list

pytestmark = [pytest.mark.integration, pytest.mark.hub]
SCALE = 3000


def sessions(project: str) -> str:
    return f"/api/v1/projects/{project}/psi/sessions"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def problem(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    if code:
        assert body["code"] == code, body
    return body


@pytest.fixture
def env(api: Any, runtime: Any, hub: HubHandle) -> dict[str, Any]:
    import_psi_sample(runtime, SCALE, ("tax_credit",))
    ids, _ = column(SCALE, "tax_credit", "uscc", "taxpayer_id")
    a = active_project(runtime, grants({"tax_credit": ["cardinality"]}, quota=5), members=["alice"])
    b = active_project(runtime, grants({"tax_credit": ["cardinality"]}), members=["alice", "bob"])
    values = sorted({NORMALIZERS["uscc"](v) for v in ids[:150]})
    return {
        "a": a,
        "b": b,
        "alice": hub.token_for("alice", ["operator"]),
        "bob": hub.token_for("bob", ["operator"]),
        "values": values,
        "ids": ids,
    }


def start(
    api: Any, token: str, project: str, size: int, mode: str = "cardinality", named: str | None = None
) -> Any:
    """Open a session under ``project``'s path; ``named``: the project the body names (none by default)."""
    body = {"dataset": "tax_credit", "column": "uscc", "mode": mode, "size": size}
    if named is not None:
        body["project"] = named
    return api.post(sessions(project), json=body, headers=auth(token))


def request_body(info: dict[str, Any], values: list[str], **override: Any) -> bytes:
    key = operator.new_client_key(False)
    frame = Frame(
        session=info["id"],
        nonce=base64.urlsafe_b64decode(info["nonce"]),
        project=info["project"],
        dataset="tax_credit",
        column="uscc",
        mode=info["mode"],
        declared_size=info["declared_size"],
        parts=1,
        request=build_request(operator.encrypt_items(key, values, reveal=False), reveal=False),
    )
    for name, value in override.items():
        setattr(frame, name, value)
    return encode(frame)


def post(
    api: Any, token: str, info: dict[str, Any], body: bytes, what: str = "request", project: str | None = None
) -> Any:
    url = f"{sessions(project or info['project'])}/{info['id']}/{what}"
    return api.post(url, content=body, headers={**auth(token), "Content-Type": MEDIA_TYPE})


def test_single_item_probes_and_oversized_sets_are_refused_before_any_work(
    api: Any, env: dict[str, Any]
) -> None:
    body = problem(start(api, env["alice"], env["a"], 1), 400, "bad-request")
    assert "minimum" in body["detail"]
    problem(start(api, env["alice"], env["a"], 9), 400)
    assert "maximum" in problem(start(api, env["alice"], env["a"], 1_000_001), 400)["detail"]
    problem(start(api, env["alice"], env["a"], 0), 422)
    assert charges(api.app.state.runtime, env["a"])["records"] == 0


def test_modes_outside_the_grant_or_policy_are_refused(api: Any, env: dict[str, Any]) -> None:
    problem(start(api, env["alice"], env["a"], 150, "cohort"), 403, "not-in-grant")  # not granted
    problem(
        start(api, env["alice"], env["a"], 150, "intersection"), 403, "not-in-grant"
    )  # not granted either
    problem(start(api, env["bob"], env["a"], 150), 404, "project-not-found")  # not a member: not told
    assert charges(api.app.state.runtime, env["a"]) == {"records": 0, "units": 0, "ledger_records": 0}


def test_replayed_requests_are_refused(api: Any, env: dict[str, Any]) -> None:
    info = start(api, env["alice"], env["a"], len(env["values"])).json()
    body = request_body(info, env["values"])
    first = post(api, env["alice"], info, body)
    assert first.status_code == 200 and first.headers["Lab-Record-Id"].startswith("dr_")
    assert len(parse_response(decode(first.content, max_bytes=1 << 24).response)) == len(env["values"])
    assert "replay" in problem(post(api, env["alice"], info, body), 409, "conflict")["detail"]
    # the same body against a fresh session: the nonce does not match
    fresh = start(api, env["alice"], env["a"], len(env["values"])).json()
    problem(post(api, env["alice"], fresh, body), 400, "psi-protocol")
    assert charges(api.app.state.runtime, env["a"])["units"] == 1  # only the legitimate run


def test_truncated_or_reframed_requests_are_refused_and_the_session_stays_usable(
    api: Any, env: dict[str, Any]
) -> None:
    info = start(api, env["alice"], env["a"], len(env["values"])).json()
    body = request_body(info, env["values"])
    for cut in (1, 40, len(body) // 2, len(body) - 33, len(body) - 1):
        problem(post(api, env["alice"], info, body[:cut]), 400, "psi-protocol")
    # a well-formed message with fewer items than declared (truncated at an element boundary)
    short = request_body(info, env["values"][:-1])
    assert "declared" in problem(post(api, env["alice"], info, short), 400, "psi-protocol")["detail"]
    problem(post(api, env["alice"], info, b"not a protobuf"), 400, "psi-protocol")
    limit = info["max_body_bytes"]
    too_large = problem(post(api, env["alice"], info, b"\x00" * (limit + 1)), 413, "payload-too-large")
    assert too_large["max_bytes"] == limit  # the catalog's promise, as for HE contexts
    wrong_type = api.post(
        f"{sessions(env['a'])}/{info['id']}/request", content=body, headers=auth(env["alice"])
    )
    problem(wrong_type, 400, "psi-protocol")
    assert charges(api.app.state.runtime, env["a"])["records"] == 0
    assert post(api, env["alice"], info, body).status_code == 200  # still answering, same session


def test_requests_against_another_projects_session_are_refused(api: Any, env: dict[str, Any]) -> None:
    a, b = env["a"], env["b"]
    info = start(api, env["alice"], a, len(env["values"])).json()
    across = request_body(info, env["values"], project=b)
    assert repr(b) in problem(post(api, env["alice"], info, across), 400, "project-mismatch")["detail"]
    # a session request naming another project than its path's
    assert repr(b) in problem(start(api, env["alice"], a, 150, named=b), 400, "project-mismatch")["detail"]
    assert start(api, env["alice"], a, 150, named=a).status_code == 201  # naming the path's is fine
    # bob (member of project b only) can neither download project a's setup nor answer its session:
    # under a's path he is told no such project, as on DP routes ...
    setup_a = f"{sessions(a)}/{info['id']}/setup"
    problem(api.get(setup_a, headers=auth(env["bob"])), 404, "project-not-found")
    problem(post(api, env["bob"], info, request_body(info, env["values"])), 404, "project-not-found")
    # ... and under his own project's path a's session answers exactly as one that does not exist
    # (alice, a member of both, too: the path's project decides)
    unknown = "psis_" + "0" * 32
    for token in (env["bob"], env["alice"]):
        for tail in ("", "/setup"):
            theirs = api.get(f"{sessions(b)}/{info['id']}{tail}", headers=auth(token))
            none = api.get(f"{sessions(b)}/{unknown}{tail}", headers=auth(token))
            assert problem(theirs, 404, "not-found")["detail"] == problem(none, 404)["detail"].replace(
                unknown, info["id"]
            )
        r = post(api, token, info, request_body(info, env["values"]), project=b)
        assert problem(r, 404, "not-found")["detail"].startswith(f"no PSI session {info['id']}")
    runtime = api.app.state.runtime
    assert charges(runtime, env["a"])["records"] == 0 and charges(runtime, env["b"])["records"] == 0
    assert post(api, env["alice"], info, request_body(info, env["values"])).status_code == 200


def test_quota_is_enforced_and_failed_runs_are_not_counted(api: Any, env: dict[str, Any]) -> None:
    c = lab_client(api, env["alice"]).use(env["a"])
    items, expected = operator_list(env["ids"], "uscc", n=200, inside=80, invalid=0)
    for _ in range(5):
        assert c.psi.intersect(items, dataset="tax_credit", column="uscc", mode="cardinality").size == len(
            expected
        )
    problem(start(api, env["alice"], env["a"], 200), 429, "quota-exceeded")
    assert charges(api.app.state.runtime, env["a"])["units"] == 5


def test_malformed_cohort_uploads_are_refused_without_harm(
    api: Any, runtime: Any, env: dict[str, Any]
) -> None:
    pid = active_project(runtime, grants({"tax_credit": ["cohort"]}), members=["alice"])
    values = env["values"]
    info = start(api, env["alice"], pid, len(values), "cohort").json()
    lab_request = decode(
        api.get(f"{sessions(pid)}/{info['id']}/setup", headers=auth(env["alice"])).content, max_bytes=1 << 26
    )
    from psi_service.protocol import parse_request

    elements = parse_request(lab_request.request, reveal=True)
    assert len(elements) == info["lab_set_size"]
    setup, response, proof = operator.answer_lab_request(values, elements, fpr=float(info["fpr"]))
    base = Frame(
        session=info["id"],
        nonce=base64.urlsafe_b64decode(info["nonce"]),
        project=pid,
        dataset="tax_credit",
        column="uscc",
        mode="cohort",
        declared_size=len(values),
        parts=1,
    )

    def upload(**kw: Any) -> Any:
        frame = Frame(**{**base.__dict__, "setup": setup, "response": response, "proof": proof, **kw})
        return post(api, env["alice"], info, encode(frame), "cohort")

    problem(upload(setup=b"\x00garbage"), 400, "psi-protocol")
    problem(upload(response=parse_and_drop_one(response)), 400, "psi-protocol")
    import private_set_intersection.python as psi

    hostile = psi.ServerSetup()
    hostile.gcs.bits, hostile.gcs.div, hostile.gcs.hash_range = b"\x00" * 7 + b"\x80", 62, 2**62
    r = upload(setup=hostile.SerializeToString())
    assert r.status_code in (200, 400), (
        r.text
    )  # parsed in an isolated worker: an answer or a 400, never a crash
    assert charges(runtime, pid)["records"] == (1 if r.status_code == 200 else 0)
    if r.status_code == 400:
        ok = upload()
        assert ok.status_code == 409  # the session was consumed by the failed attempt
    again = lab_client(api, env["alice"]).use(pid)
    co = again.psi.intersect(values, dataset="tax_credit", column="uscc", mode="cohort")
    assert co.cohort_id.startswith("co_")  # still answering


def parse_and_drop_one(response: bytes) -> bytes:
    from psi_service.protocol import build_response

    return build_response(parse_response(response)[:-1])
