"""The malicious operator against PSI (issue 12 items 1–2, issue 13 item 2), with a modified client.

Each attack edits the real client code the way an operator would in their notebook — it replaces
``psi_service.operator.answer_lab_request`` (what ``client.psi.intersect(..., mode="cohort")``
calls to answer the lab) or drives the protocol by hand — and must be refused, charge nothing and
store no cohort, or yield nothing beyond the DP value the lab releases:

* cohort: position substitution (every answer element := element 5), one repeated element,
  reversal, an answer under two keys — all refused by the DLEQ proof / the duplicate check;
* cohort: the lab's request is fresh (key, order) per session, so two sessions are unlinkable;
* cardinality on non-open data (per-item blinding turns it into membership; a 1-item probe padded
  with random curve points passes a declared-size check): refused by policy and grant;
* the same two attacks on open data, where cardinality is allowed, recover exactly the memberships:
  the attacks are real, so their refusal on non-open data is not vacuous;
* a 3-id cohort probe: refused before any work with a 400 naming the policy's minimum.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

import lab.client as client_errors
import psi_service.operator as operator_module
from lab.artifacts.models import CohortRow
from lab.identifiers import NORMALIZERS
from psi_service import operator, parallel
from psi_service.models import PsiSessionRow
from psi_service.protocol import (
    MEDIA_TYPE,
    Frame,
    build_request,
    decode,
    encode,
    parse_request,
    parse_response,
)
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._psi import _outside, charges, column, grants, import_psi_sample, lab_client

pytestmark = [pytest.mark.integration, pytest.mark.hub]
SCALE = 1200


def sessions(project: str) -> str:
    return f"/api/v1/projects/{project}/psi/sessions"


Tamper = Callable[[list[bytes], list[bytes]], list[bytes]]


@pytest.fixture
def env(api: Any, runtime: Any, hub: HubHandle) -> dict[str, Any]:
    import_psi_sample(runtime, SCALE, ("population",))
    ids, _ = column(SCALE, "population", "resident_id", "person_id")
    values = sorted({NORMALIZERS["resident_id"](v) for v in ids if v})
    pid = active_project(runtime, grants({"population": ["cohort"]}), members=["alice"])
    token = hub.token_for("alice", ["operator"])
    return {"pid": pid, "token": token, "client": lab_client(api, token).use(pid), "values": values}


def cohorts(runtime: Any, pid: str) -> int:
    with runtime.transaction() as s:
        return int(
            s.execute(
                select(func.count()).select_from(CohortRow).where(CohortRow.project_id == pid)
            ).scalar_one()
        )


@contextmanager
def modified_client(monkeypatch: pytest.MonkeyPatch, tamper: Tamper) -> Iterator[None]:
    """The operator's edit of its client: answer the lab honestly, then rewrite the answer."""
    honest = operator_module.answer_lab_request

    def answer(values: Any, lab_request: Any, **kw: Any) -> tuple[bytes, ...]:
        out = list(honest(values, lab_request, **kw))
        out[1] = build_response_of(tamper(list(lab_request), parse_response(out[1])))
        return tuple(out)

    with monkeypatch.context() as m:
        m.setattr(operator_module, "answer_lab_request", answer)
        yield


def build_response_of(elements: list[bytes]) -> bytes:
    from psi_service.protocol import build_response

    return build_response(elements)


def _substitute_5(request: list[bytes], response: list[bytes]) -> list[bytes]:
    return [response[5]] * len(response)


def _one_duplicate(request: list[bytes], response: list[bytes]) -> list[bytes]:
    return [response[0], response[0], *response[2:]]


def _reverse(request: list[bytes], response: list[bytes]) -> list[bytes]:
    return response[::-1]


def _two_keys(request: list[bytes], response: list[bytes]) -> list[bytes]:
    import private_set_intersection.python as psi

    other = psi.server.CreateWithNewKey(True).GetPrivateKeyBytes()
    half = len(request) // 2
    return response[:half] + parallel.process_request_chunk(other, True, request[half:])


@pytest.mark.parametrize(
    "tamper",
    [_substitute_5, _one_duplicate, _reverse, _two_keys],
    ids=["position-substitution", "duplicates", "reversal", "two-keys"],
)
def test_a_tampered_cohort_answer_is_refused_and_charges_nothing(
    runtime: Any, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tamper: Tamper
) -> None:
    c, pid = env["client"], env["pid"]
    mine = env["values"][:300]  # the operator's list: 300 residents of the column
    with modified_client(monkeypatch, tamper), pytest.raises(client_errors.BadRequest) as err:
        c.psi.intersect(mine, dataset="population", column="resident_id", mode="cohort")
    assert err.value.status == 400
    assert err.value.code in ("psi-invalid-proof", "psi-protocol"), err.value.problem
    assert charges(runtime, pid)["records"] == 0 and charges(runtime, pid)["units"] == 0
    assert cohorts(runtime, pid) == 0
    # the honest client still works, and its cohort is exactly the operator's list
    co = c.psi.intersect(mine, dataset="population", column="resident_id", mode="cohort")
    assert co.cohort_id.startswith("co_") and charges(runtime, pid)["records"] == 1


def _session(api: Any, env: dict[str, Any], size: int, mode: str = "cohort") -> Any:
    body = {
        "dataset": env.get("dataset", "population"),
        "column": env.get("column", "resident_id"),
        "mode": mode,
        "size": size,
    }
    return api.post(sessions(env["pid"]), json=body, headers={"Authorization": f"token {env['token']}"})


def _lab_request(api: Any, env: dict[str, Any], info: dict[str, Any]) -> list[bytes]:
    r = api.get(
        f"{sessions(info['project'])}/{info['id']}/setup", headers={"Authorization": f"token {env['token']}"}
    )
    return parse_request(decode(r.content, max_bytes=1 << 26).request, reveal=True)


def test_the_lab_request_is_fresh_and_shuffled_per_session(api: Any, env: dict[str, Any]) -> None:
    first, second = (_session(api, env, 150).json() for _ in range(2))
    a, b = _lab_request(api, env, first), _lab_request(api, env, second)
    assert len(a) == len(b) == first["lab_set_size"] > len(env["values"]) - 1
    assert not set(a) & set(b)  # another key per session: nothing links the two requests
    assert first["artifact_sha256"] != second["artifact_sha256"]


def test_a_three_id_cohort_probe_is_refused_before_any_work(runtime: Any, env: dict[str, Any]) -> None:
    c, pid = env["client"], env["pid"]
    with pytest.raises(client_errors.BadRequest) as err:
        c.psi.intersect(env["values"][:3], dataset="population", column="resident_id", mode="cohort")
    assert err.value.status == 400
    assert "minimum 100" in err.value.detail and err.value.problem["min_client_set"] == 100
    with runtime.transaction() as s:
        sessions = s.execute(
            select(func.count()).select_from(PsiSessionRow).where(PsiSessionRow.project_id == pid)
        ).scalar_one()
    assert sessions == 0 and charges(runtime, pid)["records"] == 0


def _random_points(n: int) -> list[bytes]:
    import private_set_intersection.python as psi

    key = psi.client.CreateWithNewKey(False).GetPrivateKeyBytes()
    return parallel.create_request_chunk(
        key, False, [base64.b64encode(bytes([i]) * 16).decode() for i in range(n)]
    )


def test_cardinality_on_non_open_data_is_refused_per_item_blinding_and_padded_probes(
    api: Any, runtime: Any, hub: HubHandle
) -> None:
    """A project granted cardinality on ``population`` (as approved before the policy change):
    per-item blinding would recover every membership, a padded 1-item probe one; both are refused."""
    import_psi_sample(runtime, SCALE, ("population",))
    ids, _ = column(SCALE, "population", "resident_id", "person_id")
    inside = sorted({NORMALIZERS["resident_id"](v) for v in ids if v})[:50]
    pid = active_project(runtime, grants({"population": ["cardinality"]}), members=["alice"])
    token = hub.token_for("alice", ["operator"])
    env = {"pid": pid, "token": token}
    recovered = _per_item_blinding_attack(api, env, inside + [f"11010119900101{i:03d}X" for i in range(50)])
    assert recovered == 0, f"membership of {recovered} residents recovered through cardinality"
    probe = _padded_probe(api, env, inside[0], padding=99)
    assert probe is None, "a 1-item probe padded with random points was answered"
    assert charges(runtime, pid)["records"] == 0


def test_on_open_data_the_same_attacks_recover_membership_through_cardinality(
    api: Any, runtime: Any, hub: HubHandle
) -> None:
    """Why cardinality counts as intersection, and the proof that the refusal above is not vacuous:
    where cardinality is allowed (open data), the same modified client reads every membership out of
    one "count" session, and a 1-item probe padded with 99 random points answers for its one item."""
    import_psi_sample(runtime, SCALE, ("enterprise_registry",))
    ids, _ = column(SCALE, "enterprise_registry", "uscc", "enterprise_id")
    held = {NORMALIZERS["uscc"](v) for v in ids if v}
    inside, rng = sorted(held)[:50], random.Random(3)
    outside = sorted({NORMALIZERS["uscc"](_outside("uscc", rng)) for _ in range(60)} - held)[:50]
    pid = active_project(
        runtime, grants({"enterprise_registry": ["cardinality"]}, dp=False), members=["alice"]
    )
    token = hub.token_for("alice", ["operator"])
    env = {"pid": pid, "token": token, "dataset": "enterprise_registry", "column": "uscc"}
    assert _per_item_blinding_attack(api, env, inside + outside) == len(inside)
    assert _padded_probe(api, env, inside[0], padding=99) == 1
    assert _padded_probe(api, env, outside[0], padding=99) == 0


def _per_item_blinding_attack(api: Any, env: dict[str, Any], items: list[str]) -> int:
    """Each item under its own key; each response element unblinded by each key: memberships."""
    import private_set_intersection.python as psi

    r = _session(api, env, len(items), "cardinality")
    if r.status_code != 201 and r.status_code != 200:
        return 0
    info = r.json()
    setup = psi.ServerSetup()
    setup.ParseFromString(_setup(api, env, info))
    keys = [operator.new_client_key(False) for _ in items]
    elements = [operator.encrypt_items(k, [v], reveal=False)[0] for k, v in zip(keys, items, strict=True)]
    answer = _send(api, env, info, elements, reveal=False)
    if answer is None:
        return 0
    response = psi.Response()
    response.encrypted_elements.extend(answer)
    return sum(bool(psi.client.CreateFromKey(k, False).GetIntersectionSize(setup, response)) for k in keys)


def _padded_probe(api: Any, env: dict[str, Any], target: str, padding: int) -> int | None:
    r = _session(api, env, padding + 1, "cardinality")
    if r.status_code not in (200, 201):
        return None
    info = r.json()
    setup = _setup(api, env, info)
    key = operator.new_client_key(False)
    elements = operator.encrypt_items(key, [target], reveal=False) + _random_points(padding)
    answer = _send(api, env, info, elements, reveal=False)
    if answer is None:
        return None
    return int(operator.match(key, setup, answer, reveal=False))


def _setup(api: Any, env: dict[str, Any], info: dict[str, Any]) -> bytes:
    r = api.get(
        f"{sessions(info['project'])}/{info['id']}/setup", headers={"Authorization": f"token {env['token']}"}
    )
    return decode(r.content, max_bytes=1 << 26).setup


def _send(
    api: Any, env: dict[str, Any], info: dict[str, Any], elements: list[bytes], reveal: bool
) -> list[bytes] | None:
    frame = Frame(
        session=info["id"],
        nonce=base64.urlsafe_b64decode(info["nonce"]),
        project=env["pid"],
        dataset=env.get("dataset", "population"),
        column=env.get("column", "resident_id"),
        mode=info["mode"],
        declared_size=len(elements),
        parts=1,
        request=build_request(elements, reveal=reveal),
    )
    r = api.post(
        f"{sessions(info['project'])}/{info['id']}/request",
        content=encode(frame),
        headers={"Authorization": f"token {env['token']}", "Content-Type": MEDIA_TYPE},
    )
    if r.status_code != 200:
        return None
    return parse_response(decode(r.content, max_bytes=1 << 26).response)


def test_a_padded_cohort_probe_yields_only_the_noisy_size(
    runtime: Any, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One real id and 99 random curve points in the operator's setup pass the declared-size
    check, but what comes back is the DP-noised size of a cohort of at most one, paid for in ε;
    amplifying that one membership to the whole column (substitution) is refused."""
    c, pid = env["client"], env["pid"]
    real = env["values"][7]
    rng = random.Random(5)
    decoys: list[str] = []
    while len(decoys) < 99:  # valid ids of no resident: they hash to random curve points
        v = NORMALIZERS["resident_id"](_outside("resident_id", rng))
        if v not in env["values"] and v not in decoys:
            decoys.append(v)
    co = c.psi.intersect([real, *decoys], dataset="population", column="resident_id", mode="cohort")
    assert set(vars(co)) >= {"cohort_id", "noisy_size", "epsilon", "error_bound_95"}
    assert co.epsilon == "0.1" and charges(runtime, pid)["records"] == 1
    with runtime.transaction() as s:
        from lab.artifacts.cohorts import get_cohort, load_cohort_keys

        assert len(load_cohort_keys(runtime.store, get_cohort(s, pid, co.cohort_id))) <= 1
    with modified_client(monkeypatch, _substitute_5), pytest.raises(client_errors.BadRequest):
        c.psi.intersect([real, *decoys], dataset="population", column="resident_id", mode="cohort")
    assert charges(runtime, pid)["records"] == 1
