"""HE calls larger than one request body: sent in parts, charged once, nothing before the charge.

The API's body limit is lowered to 8 MiB here (one batch of 16 ``ckks-8192`` ciphertexts is up to
6.4 MB), so a call of three batches needs three parts — the same path a 100k-record call takes
under the default 64 MiB.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

import lab.client as lc
from he_compute import frames
from he_compute.models import HeCallRow
from lab.client._he import FRAME, HeContext
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from tests.conftest import HubHandle
from tests.integration._he import (
    FEATURES,
    add_model,
    charged,
    client,
    features_frame,
    he_project,
    import_he_sample,
    linear_params,
)

pytestmark = [pytest.mark.integration, pytest.mark.hub]
LIMIT = 8 << 20
N = 3 * 4096 - 100  # three batches


@pytest.fixture
def small_api(runtime: Runtime, hub: HubHandle) -> Iterator[Any]:
    """The API with an 8 MiB request body limit."""
    from fastapi.testclient import TestClient

    from lab.api.main import create_app

    runtime.settings.hub = hub.settings
    runtime.settings.max_request_bytes = LIMIT
    runtime._hub = None
    with TestClient(create_app(runtime=runtime)) as c:
        yield c


@pytest.fixture
def alice(small_api: Any, runtime: Runtime, hub: HubHandle) -> lc.Client:
    import_he_sample(runtime)
    add_model(runtime, "credit_score_v1", "linear", linear_params())
    pid = he_project(runtime)
    return client(small_api, hub.token_for("alice", ["operator"]), pid)


def calls(runtime: Runtime, project: str) -> list[HeCallRow]:
    with runtime.transaction() as s:
        rows = list(s.execute(select(HeCallRow).where(HeCallRow.project_id == project)).scalars())
        s.expunge_all()
    return rows


def part_objects(runtime: Runtime, project: str) -> list[str]:
    return runtime.store.list_keys(runtime.store.cfg.bucket_work, f"projects/{project}/he/calls/")


def test_a_call_over_the_body_limit_succeeds_with_one_record_and_one_charge(
    alice: lc.Client, runtime: Runtime
) -> None:
    pid = alice.project or ""
    df = features_frame(N)
    plan = alice.transport.post(
        f"/api/v1/projects/{pid}/he/plan/score",
        json={"context": alice.he._register(alice.he.context("ckks-8192"), pid),
              "model": "credit_score_v1", "records": N},
    )  # fmt: skip
    assert (plan["batches"], plan["part_batches"], plan["parts"]) == (3, 1, 3)
    before = charged(runtime, pid)
    scores = alice.he.score(df, model="credit_score_v1", progress=False)
    p = linear_params()
    assert (
        np.max(np.abs(scores.to_numpy() - (df[FEATURES].to_numpy() @ np.array(p["coef"]) + p["intercept"])))
        < 1e-3
    )
    used, records, entries = charged(runtime, pid)
    assert (used - before[0], records - before[1], entries - before[2]) == (N, 1, 1)
    a = scores.attrs
    assert a["quota"]["used"] == N and a["parts"] == 3 and a["call"].startswith("hx_")
    with runtime.transaction() as s:
        rec = s.get(DerivedRecordRow, a["record_id"])
        assert rec is not None and rec.result_digest == a["result_sha256"]
        assert rec.parameters["records"] == N and rec.parameters["batches"] == 3
    [call] = calls(runtime, pid)
    assert call.status == "committed" and call.record_id == a["record_id"]
    assert part_objects(runtime, pid) == []  # results left with the commit


def test_a_failing_part_charges_nothing_and_raises_a_typed_error(
    alice: lc.Client, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = alice.project or ""
    honest = HeContext.encrypt_batches

    def tampered(self: HeContext, columns: Any, n: int, batches: Any = None) -> Iterator[list[bytes]]:
        for b, batch in zip(batches, honest(self, columns, n, batches), strict=True):
            yield [batch[0][:-64] + bytes(64), *batch[1:]] if b == 1 else batch  # part 1 corrupted

    monkeypatch.setattr(HeContext, "encrypt_batches", tampered)
    before = charged(runtime, pid)
    with pytest.raises(lc.BadRequest) as err:
        alice.he.score(features_frame(N), model="credit_score_v1", progress=False)
    assert err.value.code == "he-input-rejected" and err.value.problem["part"] == 1
    assert "part 2 of 3" in err.value.detail
    assert charged(runtime, pid) == before
    [call] = calls(runtime, pid)
    assert call.status == "abandoned" and call.record_id is None
    assert part_objects(runtime, pid) == []


def test_parts_return_nothing_and_a_call_commits_once(
    alice: lc.Client, runtime: Runtime, hub: HubHandle, small_api: Any
) -> None:
    """A modified client: parts answer no ciphertext, an incomplete call cannot commit, a call
    commits once, another operator can neither feed nor commit it, and under another project's path
    (alice's own other project) it answers exactly as a call that does not exist."""
    pid = alice.project or ""
    ctx = alice.he.context("ckks-8192")
    spec = {"context": alice.he._register(ctx, pid), "model": "credit_score_v1", "records": N}
    http = alice.transport.http
    base = f"/api/v1/projects/{pid}/he/calls"
    call = http.post(f"{base}/score", json=spec).json()
    cid, x = call["call"], features_frame(N)[FEATURES].to_numpy()
    columns = [x[:, j] for j in range(x.shape[1])]
    before = charged(runtime, pid)

    def send(k: int, who: Any = http, under: str = base, call_id: str = cid) -> Any:
        which = range(k, k + 1) if k < 3 else range(1)
        blobs = [b for batch in ctx.encrypt_batches(columns, N, which) for b in batch]
        body = frames.encode({"call": call_id, "part": k}, blobs)
        return who.put(f"{under}/{call_id}/parts/{k}", content=body, headers={"content-type": FRAME})

    first = send(0)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert first.json()["received"] == [0] and len(first.content) < 1000  # no ciphertext before the charge
    missing = http.post(f"{base}/{cid}/commit")
    assert missing.status_code == 409 and missing.json()["missing"] == [1, 2]
    bob = client(small_api, hub.token_for("bob", ["operator"]), pid).transport.http
    assert send(1, bob).status_code == 404  # not his call
    assert send(7).status_code == 400  # no such part
    assert send(1).status_code == 200 and send(2).status_code == 200
    assert bob.post(f"{base}/{cid}/commit").status_code == 404
    other = f"/api/v1/projects/{he_project(runtime)}/he/calls"  # alice's too
    unknown = "hx_" + "0" * 32
    for attempt in (
        lambda call_id: send(1, under=other, call_id=call_id),
        lambda call_id: http.post(f"{other}/{call_id}/commit"),
        lambda call_id: http.delete(f"{other}/{call_id}"),
    ):
        theirs, none = attempt(cid), attempt(unknown)
        assert theirs.status_code == none.status_code == 404
        assert theirs.json()["code"] == "not-found"
        assert theirs.json()["detail"] == none.json()["detail"].replace(unknown, cid)
    assert charged(runtime, pid) == before  # all parts in, still nothing charged

    done = http.post(f"{base}/{cid}/commit")
    assert done.status_code == 200 and done.headers["content-type"] == FRAME
    header, results = frames.decode(done.content, max_blobs=10, max_blob_bytes=1 << 24)
    assert len(results) == 3 and header["records"] == N
    again = http.post(f"{base}/{cid}/commit")
    assert again.status_code == 409 and send(0).status_code == 409
    used, records, _ = charged(runtime, pid)
    assert (used - before[0], records - before[1]) == (N, 1)


def test_a_batch_larger_than_the_body_limit_is_refused_at_plan(alice: lc.Client, runtime: Runtime) -> None:
    runtime.settings.max_request_bytes = 4 << 20  # below one batch of 16 ciphertexts
    with pytest.raises(lc.PayloadTooLarge, match="one batch of 16"):
        alice.he.score(features_frame(10), model="credit_score_v1", progress=False)


def test_open_calls_are_capped_per_caller_and_per_project_before_anything_is_stored(
    small_api: Any, runtime: Runtime, hub: HubHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator cannot park work-bucket objects in many open calls until they expire: past the
    cap the open is refused (429 with Retry-After), the refused call is not stored (so none of its
    parts can be written), and committing, abandoning or expiring a call frees its slot."""
    import datetime as dt

    from he_compute.worker import get_pool
    from lab.db.base import utcnow

    import_he_sample(runtime)
    add_model(runtime, "credit_score_v1", "linear", linear_params())
    pid = he_project(runtime, members=["alice", "bob"])
    limits = get_pool(runtime.settings.he).limits
    assert (limits.max_open_calls_per_caller, limits.max_open_calls_per_project) == (4, 8)  # defaults
    alice = client(small_api, hub.token_for("alice", ["operator"]), pid)
    ctx = alice.he.context("ckks-8192")
    spec = {"context": alice.he._register(ctx, pid), "model": "credit_score_v1", "records": 10}
    http = alice.transport.http
    base = f"/api/v1/projects/{pid}/he/calls"
    x = features_frame(10)[FEATURES].to_numpy()
    blobs = [
        b for batch in ctx.encrypt_batches([x[:, j] for j in range(x.shape[1])], 10, range(1)) for b in batch
    ]

    def open_call(who: Any = http, body: dict[str, Any] = spec) -> Any:
        return who.post(f"{base}/score", json=body)

    ids = [open_call().json()["call"] for _ in range(4)]
    sent = http.put(
        f"{base}/{ids[0]}/parts/0",
        content=frames.encode({"call": ids[0], "part": 0}, blobs),
        headers={"content-type": FRAME},
    )
    assert sent.status_code == 200
    stored = part_objects(runtime, pid)
    assert len(stored) == 1 and ids[0] in stored[0]

    refused = open_call()
    assert refused.status_code == 429 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert (problem["code"], problem["open_calls"], problem["limit"]) == ("he-open-calls", 4, 4)
    assert "alice" in problem["detail"]
    assert 3500 < int(refused.headers["Retry-After"]) <= 3600  # when the oldest open call expires
    assert sorted(c.id for c in calls(runtime, pid)) == sorted(ids)  # the refused call was not stored
    assert part_objects(runtime, pid) == stored  # nothing written to the work bucket for it

    assert http.delete(f"{base}/{ids[1]}").status_code == 204  # abandoning frees a slot
    ids.append(open_call().json()["call"])
    assert open_call().status_code == 429
    assert http.post(f"{base}/{ids[0]}/commit").status_code == 200  # so does committing
    ids.append(open_call().json()["call"])
    assert open_call().status_code == 429
    with runtime.transaction() as s:  # and expiring
        row = s.get(HeCallRow, ids[2])
        assert row is not None
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
    ids.append(open_call().json()["call"])
    assert open_call().status_code == 429
    assert part_objects(runtime, pid) == []  # the committed call's results left with its commit

    # the project's cap counts every member's open calls: alice holds 4, bob may add 2 of 6
    monkeypatch.setattr(limits, "max_open_calls_per_project", 6)
    bob = client(small_api, hub.token_for("bob", ["operator"]), pid)
    bob_spec = {**spec, "context": bob.he._register(bob.he.context("ckks-8192"), pid)}
    assert [open_call(bob.transport.http, bob_spec).status_code for _ in range(2)] == [201, 201]
    over = open_call(bob.transport.http, bob_spec)
    assert over.status_code == 429 and over.json()["limit"] == 6 and f"project {pid}" in over.json()["detail"]
    assert sum(c.status == "open" for c in calls(runtime, pid)) == 6
