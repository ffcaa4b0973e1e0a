"""Witness cosigning: overhead per append batch, and the catch-up of a witness that was down.

Usage: .venv/bin/python bench/bench_witness.py [--entries 100000] [--batches 100] [--batch 100] [--db URL]

Two witnesses run as separate processes (``python -m witness serve``) on localhost.

* per batch: an append batch alone (baseline, same run) next to one cosigning round for it — what
  the lab's background thread spends per batch: sign the checkpoint, build the consistency proof
  from the size each witness holds, two HTTP round trips, verify and store the cosignatures;
* catch-up: one witness is stopped, ``--entries`` entries are appended, it is restarted and one
  round of a fresh cosigner (nothing remembered, as after a restart) brings it from its old size to
  the new one (a single consistency proof); baselines in the same run: appending those entries,
  and the in-memory consistency proof over the same leaves.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from lab.db.migrate import upgrade
from lab.ledger import checkpoints
from lab.ledger.cosign import Cosigner
from lab.runtime import Runtime
from lab.settings import LedgerSettings, Settings, WitnessConfig
from lab.shared import merkle
from lab.storage.seaweed import free_port_block

ORIGIN = "bench.lab/ledger"


def start_witness(state: Path, name: str, log_vkey: str, port: int) -> tuple[subprocess.Popen[bytes], str]:
    cmd = [sys.executable, "-m", "witness", "serve", "--state", str(state), "--name", name]
    p = subprocess.Popen(
        [*cmd, "--log", log_vkey, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(200):
        try:
            return p, httpx.get(f"http://127.0.0.1:{port}/vkey", timeout=1).text.strip()
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("witness did not start")


def append(rt: Runtime, start: int, n: int) -> None:
    with rt.transaction() as s:
        rt.ledger(s).append_many(
            [
                ("derived.record", {"record": f"dr_{i:08d}", "cost": {"epsilon": "0.1"}}, "bench")
                for i in range(start, start + n)
            ]
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000, help="entries appended while a witness is down")
    ap.add_argument("--batches", type=int, default=100, help="append batches for the per-batch figures")
    ap.add_argument("--batch", type=int, default=100, help="entries per batch")
    ap.add_argument("--db", default="sqlite")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-witness-"))
    url = f"sqlite:///{tmp / 'ledger.sqlite'}" if args.db == "sqlite" else args.db
    upgrade(url)
    rt = Runtime(Settings(data_dir=tmp, database_url=url, secret_key=secrets.token_urlsafe(32)))  # type: ignore[call-arg]
    with rt.transaction() as s:
        log_vkey = checkpoints.log_verifier(rt.ledger(s), ORIGIN).vkey
    port = free_port_block(2, 46000, 52000)
    procs, configs = [], []
    for i in range(2):
        p, vkey = start_witness(tmp / f"w{i}", f"bench.witness/w{i}", log_vkey, port + i)
        procs.append(p)
        configs.append(WitnessConfig(url=f"http://127.0.0.1:{port + i}", vkey=vkey))
    cfg = LedgerSettings(origin=ORIGIN, witnesses=configs, quorum=2)  # type: ignore[call-arg]
    cs = Cosigner(rt.sessions, rt.settings.encryption_key, cfg)
    try:
        size, appends, rounds = 0, [], []
        for _ in range(args.batches):
            t0 = time.perf_counter()
            append(rt, size, args.batch)
            appends.append(time.perf_counter() - t0)
            size += args.batch
            t0 = time.perf_counter()
            out = cs.run_once()
            rounds.append(time.perf_counter() - t0)
            assert all(v == f"cosigned size {size}" for v in out.values()), out

        procs[1].terminate()
        procs[1].wait()
        t0 = time.perf_counter()
        for start in range(size, size + args.entries, 1000):
            append(rt, start, min(1000, size + args.entries - start))
        append_down = time.perf_counter() - t0
        old, size = size, size + args.entries
        cs.run_once()  # witness 0 keeps up; witness 1 is down
        procs[1], _ = start_witness(tmp / "w1", "bench.witness/w1", log_vkey, port + 1)
        cs.stop()  # a fresh cosigner (as after an API restart): no remembered subtrees, the worst case
        cs = Cosigner(rt.sessions, rt.settings.encryption_key, cfg)
        t0 = time.perf_counter()
        out = cs.run_once()
        catch_up = time.perf_counter() - t0
        assert out["bench.witness/w1"] == f"cosigned size {size}", out

        with rt.transaction() as s:
            from sqlalchemy import text

            leaves = [
                bytes.fromhex(h)
                for h in s.execute(text("SELECT leaf_hash FROM ledger_entries ORDER BY idx")).scalars()
            ]
        t0 = time.perf_counter()
        proof = merkle.consistency_proof(leaves, old)
        mem_proof = time.perf_counter() - t0
    finally:
        cs.stop()
        for p in procs:
            p.terminate()
            p.wait()
        rt.close()

    med_a, med_r = statistics.median(appends), statistics.median(rounds)
    p90 = statistics.quantiles(rounds, n=10)[-1] * 1000
    rate = args.entries / append_down
    what = f"consistency proof {old:,} -> {size:,}, {len(proof)} hashes"
    print(f"witness bench: 2 witness processes, database {url.split(':')[0]}")
    print(f"  baseline: append batch of {args.batch:<6} {med_a * 1000:9.1f} ms (median of {args.batches})")
    print(f"  cosign round, 2 witnesses    {med_r * 1000:9.1f} ms (median; p90 {p90:.1f} ms)")
    print(f"  cosign / append batch        {med_r / med_a:9.2f}x  (in the background: appends never wait)")
    print(f"  catch-up after {args.entries:,} entries down:")
    print(f"    baseline: appending them   {append_down:9.2f} s ({rate:,.0f} entries/s)")
    print(f"    one catch-up round (cold)  {catch_up:9.2f} s ({what})")
    print(f"    baseline: in-memory proof  {mem_proof:9.2f} s (same leaves, no database, no HTTP)")


if __name__ == "__main__":
    main()
