"""The ledger on SQLite and PostgreSQL: appends, signed heads, proofs, and tamper detection."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from lab.runtime import Runtime
from lab.shared import merkle
from lab.shared.standalone import verify_inclusion_document

pytestmark = pytest.mark.integration


def _append(runtime: Runtime, n: int) -> None:
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        for i in range(n):
            ledger.append("derived.record", {"n": i, "note": f"记录 {i}"}, actor="tester")


def _verify(runtime: Runtime):  # type: ignore[no-untyped-def]
    with runtime.transaction() as s:
        return runtime.ledger(s).verify()


def test_append_assigns_consecutive_indexes_and_roots(runtime: Runtime) -> None:
    _append(runtime, 10)
    with runtime.transaction() as s:
        ledger = runtime.ledger(s)
        entries = ledger.entries(0, 100)
        assert [e.index for e in entries] == list(range(10))
        leaves = [bytes.fromhex(e.leaf_hash) for e in entries]
        assert entries[-1].root_after == merkle.root_of(leaves).hex()
        head = ledger.head()
        assert head.size == 10 and head.verify()
    report = _verify(runtime)
    assert report.ok and report.size == 10 and report.checked_tree_heads == 1


def test_rolled_back_append_leaves_no_trace(runtime: Runtime) -> None:
    _append(runtime, 3)
    with pytest.raises(RuntimeError), runtime.transaction() as s:
        runtime.ledger(s).append("derived.record", {"n": 99}, actor="tester")
        raise RuntimeError("crash mid-request")
    with runtime.transaction() as s:
        assert runtime.ledger(s).size() == 3
    assert _verify(runtime).ok


def test_floats_are_refused(runtime: Runtime) -> None:
    with pytest.raises(TypeError), runtime.transaction() as s:
        runtime.ledger(s).append("derived.record", {"epsilon": 0.1}, actor="tester")


def test_verify_names_a_changed_entry(runtime: Runtime) -> None:
    _append(runtime, 8)
    with runtime.engine.begin() as conn:
        body = conn.execute(text("SELECT body FROM ledger_entries WHERE idx = 5")).scalar_one()
        conn.execute(
            text("UPDATE ledger_entries SET body = :b WHERE idx = 5"), {"b": body.replace('"n":5', '"n":500')}
        )
    report = _verify(runtime)
    assert not report.ok and report.first_bad_index == 5 and "changed" in (report.reason or "")


def test_verify_names_a_deleted_entry(runtime: Runtime) -> None:
    _append(runtime, 8)
    with runtime.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE idx = 3"))
    report = _verify(runtime)
    assert not report.ok and report.first_bad_index == 3 and "missing" in (report.reason or "")


def test_verify_names_the_last_entry_deleted(runtime: Runtime) -> None:
    _append(runtime, 8)
    with runtime.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE idx = 7"))
    report = _verify(runtime)
    assert not report.ok and report.first_bad_index == 7


def test_verify_names_swapped_entries(runtime: Runtime) -> None:
    _append(runtime, 8)
    with runtime.engine.begin() as conn:
        rows = {
            r.idx: r
            for r in conn.execute(text("SELECT idx, body, leaf_hash FROM ledger_entries WHERE idx IN (2, 6)"))
        }
        for a, b in ((2, 6), (6, 2)):
            conn.execute(
                text("UPDATE ledger_entries SET body = :body, leaf_hash = :lh WHERE idx = :i"),
                {"body": rows[b].body, "lh": rows[b].leaf_hash, "i": a},
            )
    report = _verify(runtime)
    assert not report.ok and report.first_bad_index == 2 and "out of place" in (report.reason or "")


def test_verify_catches_a_consistent_rewrite_through_signed_heads(runtime: Runtime) -> None:
    _append(runtime, 4)
    with runtime.transaction() as s:
        runtime.ledger(s).head()
    # rewrite everything consistently: new body, recomputed leaf hashes and roots
    with runtime.engine.begin() as conn:
        rows = conn.execute(text("SELECT idx, body FROM ledger_entries ORDER BY idx")).all()
        frontier = merkle.Frontier()
        for idx, body in rows:
            new_body = body.replace('"n":1', '"n":111') if idx == 1 else body
            leaf = merkle.leaf_hash(new_body.encode())
            frontier.append(leaf)
            conn.execute(
                text("UPDATE ledger_entries SET body=:b, leaf_hash=:l, root_after=:r WHERE idx=:i"),
                {"b": new_body, "l": leaf.hex(), "r": frontier.root().hex(), "i": idx},
            )
    report = _verify(runtime)
    assert not report.ok and "rewritten" in (report.reason or "")


def test_inclusion_proof_verifies_offline_and_tampering_fails(runtime: Runtime) -> None:
    _append(runtime, 13)
    with runtime.transaction() as s:
        doc = runtime.ledger(s).inclusion(6)
        keys = runtime.ledger(s).public_keys()
    doc = json.loads(json.dumps(doc))  # as a file would carry it
    ok, why = verify_inclusion_document(doc, keys)
    assert ok, why
    tampered_entry = json.loads(json.dumps(doc))
    tampered_entry["entry"]["body"]["n"] = 7
    assert verify_inclusion_document(tampered_entry, keys)[0] is False
    tampered_path = json.loads(json.dumps(doc))
    tampered_path["audit_path"][0] = "00" * 32
    assert verify_inclusion_document(tampered_path, keys)[0] is False
    tampered_sig = json.loads(json.dumps(doc))
    tampered_sig["tree_head"]["timestamp_ms"] += 1
    assert verify_inclusion_document(tampered_sig, keys)[0] is False


def test_consistency_between_heads(runtime: Runtime) -> None:
    _append(runtime, 5)
    with runtime.transaction() as s:
        old = runtime.ledger(s).head()
    _append(runtime, 6)
    with runtime.transaction() as s:
        proof = runtime.ledger(s).consistency(old.size)
    assert proof["old_root"] == old.root_hash
    assert merkle.verify_consistency(
        old.size,
        proof["new_size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(old.root_hash),
        bytes.fromhex(proof["new_root"]),
    )
