"""Ledger append and verify throughput for 100k entries, next to baselines measured in the same run.

Usage: .venv/bin/python bench/bench_ledger.py [--entries 100000] [--db sqlite|URL]

Baselines:
* hash floor — RFC 9162 leaf hashing + frontier root of the same canonical bodies in memory, no database:
  the least any verifier must do;
* naive append — recomputing the whole tree root from all leaves on every append (what a log without a
  stored frontier does), measured on a prefix and extrapolated.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

from lab.db.migrate import upgrade
from lab.ledger.entries import canonical_json
from lab.runtime import Runtime
from lab.settings import Settings
from lab.shared import merkle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000, help="entries per transaction")
    ap.add_argument("--db", default="sqlite")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    url = f"sqlite:///{tmp / 'ledger.sqlite'}" if args.db == "sqlite" else args.db
    upgrade(url)
    rt = Runtime(Settings(data_dir=tmp, database_url=url, secret_key=secrets.token_urlsafe(32)))  # type: ignore[call-arg]
    n, batch = args.entries, args.batch

    t0 = time.perf_counter()
    for start in range(0, n, batch):
        with rt.transaction() as s:
            rt.ledger(s).append_many(
                [
                    (
                        "derived.record",
                        {"record": f"dr_{i:08d}", "channel": "dp", "cost": {"epsilon": "0.1"}},
                        "bench",
                    )
                    for i in range(start, min(n, start + batch))
                ]
            )
    append_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for i in range(200):
        with rt.transaction() as s:
            rt.ledger(s).append("derived.record", {"record": f"single_{i}"}, actor="bench")
    single_s = (time.perf_counter() - t0) / 200

    with rt.transaction() as s:
        rt.ledger(s).head()
    t0 = time.perf_counter()
    with rt.transaction() as s:
        report = rt.ledger(s).verify()
    verify_s = time.perf_counter() - t0
    assert report.ok, report.reason

    bodies = [canonical_json({"kind": "derived.record", "body": {"record": f"dr_{i:08d}"}}) for i in range(n)]
    t0 = time.perf_counter()
    f = merkle.Frontier()
    for b in bodies:
        f.append(merkle.leaf_hash(b))
    f.root()
    floor_s = time.perf_counter() - t0

    prefix = 2000
    leaves = [merkle.leaf_hash(b) for b in bodies[:prefix]]
    t0 = time.perf_counter()
    for k in range(1, prefix + 1):
        merkle.root_of(leaves[:k])
    naive_prefix_s = time.perf_counter() - t0
    naive_full_s = naive_prefix_s * (n / prefix) ** 2  # quadratic

    total = report.size
    print(f"ledger bench: {n} entries, batches of {batch}, database {url.split(':')[0]}")
    print(f"  append_many (batch)    {n / append_s:12,.0f} entries/s   ({append_s:.1f} s)")
    print(f"  append (1 per txn)    {1 / single_s:12,.0f} entries/s   ({single_s * 1000:.2f} ms each)")
    print(f"  verify (whole log)    {total / verify_s:12,.0f} entries/s   ({verify_s:.1f} s for {total})")
    print(f"  baseline hash floor   {n / floor_s:12,.0f} entries/s   (in-memory hashing only)")
    print(
        f"  baseline naive append {n / naive_full_s:12,.0f} entries/s   (full root per append; "
        f"{prefix} measured, extrapolated to {n})"
    )
    print(f"  verify / hash floor   {floor_s / verify_s:12.2f}x")
    rt.close()


if __name__ == "__main__":
    main()
