"""Benchmark the DP channel on a 10M-row population-like dataset against two baselines, same run.

Usage::

    .venv/bin/python bench/bench_dp.py                 # 10,000,000 rows
    .venv/bin/python bench/bench_dp.py --rows 1000000 --repeat 5

Queries (ε = 1 each, pure ε-DP): (1) count + mean(monthly_income) grouped by town (18 towns),
(2) ungrouped mean(monthly_income); bounds [0, 50000] from the policy.

* **service** — our endpoint, ``POST /api/v1/projects/{p}/dp/query``, through in-process HTTP
  (FastAPI ``TestClient``) in a fresh *serving* process: authorize, contribution bounding (cached per
  version), DuckDB over the verified local Parquet, diffprivlib noise, charge + derived record +
  ledger entry + stored answer in one short SQLite transaction; the engine and the noise run in the
  lab's DP worker processes (``lab/dp/workers.py``), whose peak RSS is reported beside the serving
  process's. The caller is resolved by a dependency
  override (a named bench double; no Hub needed). The direct service call (no HTTP) is reported too.
  Each repetition uses a slightly different ε, so no answer is a replay of an earlier one.
* **(a) diffprivlib tools** — ``tools.count_nonzero`` / ``tools.mean`` on numpy arrays read from the
  same Parquet with pyarrow, loading included, one boolean mask per town for the grouped query.
* **(b) DuckDB + noise** — the exact clamped aggregates in process (one SQL statement) plus
  diffprivlib ``Geometric``/``Laplace`` noise; no authorization, no bounding, no accounting.

Every measurement runs in its own child process, which reports its wall times and its peak RSS
(``ru_maxrss``); the setup (generate, import through the catalog into SeaweedFS, prepare) runs in
yet another process so that the serving process's peak is the service's own.
Targets: service ≥ 3× faster than (a) on the grouped query, within 2× of (b), peak RSS < 1 GiB.
Measured figures are printed; the last run on the dev container is recorded in ``docs/dp.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MIB = 1024**2
EPSILON = 1.0
BOUNDS = (0.0, 50000.0)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _descendant_peaks() -> list[int]:
    """Peak RSS (VmHWM, bytes) of every live descendant of this process: the DP worker processes
    and the fork server they come from (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - mine
        mine |= frontier
    peaks = []
    for pid in mine:
        try:
            with open(f"/proc/{pid}/status") as f:
                hwm = next(line for line in f if line.startswith("VmHWM:"))
            peaks.append(int(hwm.split()[1]) * 1024)
        except (OSError, StopIteration, ValueError):
            continue
    return peaks


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


# --- data ----------------------------------------------------------------------------------------


def bench_policy() -> Any:
    """The population policy without identifier and date columns (the generator stays simple)."""
    import yaml

    from lab.catalog.policy import parse_policy

    data = yaml.safe_load((ROOT / "policies" / "population.yaml").read_text(encoding="utf-8"))
    data["dataset"] = "bench_population"
    data["columns"] = [c for c in data["columns"] if c["name"] not in ("resident_id", "phone", "birth_date")]
    data["channels"] = {
        "dp": {**data["channels"]["dp"], "filterable": ["town", "gender", "education", "age"]}
    }
    # the dataset account as large as the bench project's grant, so the grant is what binds
    data["account"] = {**data["account"], "epsilon": "100", "period_epsilon": "100"}
    return parse_policy(data, "bench_population")


def generate(rows: int, path: Path, seed: int = 7) -> None:
    """A population-like Parquet file, written 1M rows at a time (numpy + pyarrow)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    policy = bench_policy()
    towns = list(policy.column("town").domain)
    edu = list(policy.column("education").domain)
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(len(towns)) * 3)
    writer = None
    for start in range(0, rows, 1_000_000):
        n = min(1_000_000, rows - start)
        digits = pc.utf8_lpad(pa.array(np.arange(start, start + n)).cast(pa.string()), 10, "0")
        ids = pc.binary_join_element_wise("P", digits, "")
        age = rng.integers(0, 100, n)
        income = np.round(np.clip(rng.lognormal(8.6, 0.6, n), 0, 50000), 2)
        table = pa.table(
            {
                "person_id": ids,
                "gender": pa.array(np.where(rng.random(n) < 0.5, "男", "女")).cast(pa.string()),
                "age": pa.array(age, pa.int64()),
                "town": pa.array(np.array(towns)[rng.choice(len(towns), n, p=weights)]),
                "education": pa.array(np.array(edu)[rng.integers(0, len(edu), n)]),
                "household_size": pa.array(rng.integers(1, 7, n), pa.int64()),
                "monthly_income": pa.array(income),
                "employed": pa.array((rng.random(n) < 0.6).astype(np.int64)),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=200_000)
    assert writer is not None
    writer.close()


# --- children ------------------------------------------------------------------------------------


def _runtime(env: dict[str, Any]) -> Any:
    from lab.runtime import Runtime
    from lab.settings import S3Settings, Settings

    s3 = S3Settings(  # type: ignore[call-arg]
        endpoint=env["endpoint"],
        access_key=env["access_key"],
        secret_key=env["secret_key"],
        bucket_raw="bench-raw",
        bucket_products="bench-products",
        bucket_work="bench-work",
    )
    settings = Settings(  # type: ignore[call-arg]
        data_dir=Path(env["dir"]) / "data",
        database_url=f"sqlite:///{Path(env['dir']) / 'lab.sqlite'}",
        secret_key="bench-secret-key-0123456789abcdef",
        s3=s3,
    )
    return Runtime(settings)


def child_setup(env: dict[str, Any]) -> dict[str, Any]:
    from lab.catalog.service import CatalogImporter
    from lab.db.migrate import upgrade
    from tests.factories import active_project

    rt = _runtime(env)
    upgrade(rt.settings.db_url)
    rt.store.ensure_buckets()
    t0 = time.perf_counter()
    with rt.transaction() as s:
        CatalogImporter(s, rt.store, rt.ledger(s)).import_file(
            Path(env["parquet"]), bench_policy(), "steward1"
        )
    t1 = time.perf_counter()
    grant = {"bench_population": {"dp": {"epsilon": "100", "epsilon_per_query": "1"}}}
    project = active_project(rt, grant, members=["alice"])
    rt.close()
    return {"project": project, "import_s": t1 - t0, "peak_rss": _peak_rss()}


def _specs(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    eps = f"{EPSILON - i / 10_000:g}"  # a distinct ε per call: never a replay of an earlier answer
    select = [{"agg": "count"}, {"agg": "mean", "column": "monthly_income"}]
    grouped = {"dataset": "bench_population", "epsilon": eps, "group_by": ["town"], "select": select}
    overall = {"dataset": "bench_population", "epsilon": eps, "select": select[1:]}
    return grouped, overall


def child_service(env: dict[str, Any]) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from lab.api.deps import get_principal
    from lab.api.main import create_app
    from lab.dp import service
    from lab.dp.spec import QuerySpec
    from lab.identity import Principal

    rt = _runtime(env)
    alice = Principal.from_groups("alice", ["operator"])
    app = create_app(runtime=rt)
    app.dependency_overrides[get_principal] = lambda: alice  # bench double: no Hub in this process
    url = f"/api/v1/projects/{env['project']}/dp/query"
    out: dict[str, list[float]] = {
        "http_grouped": [],
        "http_overall": [],
        "call_grouped": [],
        "call_overall": [],
    }
    base = 100 * env["round"]
    with TestClient(app) as http:
        t = time.perf_counter()
        r = http.post(url, json=_specs(base + 99)[0])  # first query of this process (first of the version too
        first = time.perf_counter() - t  # in round 0: download, verification, contribution-bounding check)
        assert r.status_code == 200, r.text
        for i in range(env["repeat"]):
            grouped, overall = _specs(base + i)
            for name, body in (("http_grouped", grouped), ("http_overall", overall)):
                t = time.perf_counter()
                r = http.post(url, json=body)
                out[name].append(time.perf_counter() - t)
                assert r.status_code == 200 and not r.json()["cached"], r.text
            grouped, overall = _specs(base + 50 + i)
            for name, body in (("call_grouped", grouped), ("call_overall", overall)):
                t = time.perf_counter()
                service.query(rt, alice, env["project"], QuerySpec.model_validate(body))
                out[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        assert http.post(url, json=_specs(base)[0]).json()["cached"]
        replay = time.perf_counter() - t
        cached = [p for p in (rt.cache_dir / "bench_population").glob("*.parquet")]
        workers = _descendant_peaks()  # while the DP worker processes are alive
    rt.close()
    peaks = {"peak_rss": _peak_rss(), "worker_peak_rss": max(workers, default=0), "workers": len(workers)}
    return {**out, "first": first, "replay": replay, "parquet": str(cached[0]), **peaks}


def child_diffprivlib(env: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from diffprivlib import BudgetAccountant, tools

    towns = list(bench_policy().column("town").domain)
    grouped_t, overall_t = [], []
    for _ in range(env["repeat"]):
        acc = BudgetAccountant()
        t = time.perf_counter()
        table = pq.read_table(env["parquet"], columns=["town", "monthly_income"])
        town = table.column("town").to_numpy()
        income = table.column("monthly_income").to_numpy()
        load = time.perf_counter() - t
        result = {}
        for name in towns:
            mask = town == name
            n = tools.count_nonzero(mask, epsilon=EPSILON / 2, accountant=acc)
            m = tools.mean(income[mask], epsilon=EPSILON / 2, bounds=BOUNDS, accountant=acc)
            result[name] = (n, m)
        assert len(result) == len(towns)
        grouped_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        income = pq.read_table(env["parquet"], columns=["monthly_income"]).column(0).to_numpy()
        tools.mean(income, epsilon=EPSILON, bounds=BOUNDS, accountant=acc)
        overall_t.append(time.perf_counter() - t)
        del table, town, income
    return {"grouped": grouped_t, "overall": overall_t, "load": load, "peak_rss": _peak_rss()}


def child_duckdb(env: dict[str, Any]) -> dict[str, Any]:
    import duckdb
    from diffprivlib.mechanisms import Geometric, Laplace

    con = duckdb.connect()
    src = f"read_parquet('{env['parquet']}')"
    clamp = f"LEAST(GREATEST(monthly_income, {BOUNDS[0]}), {BOUNDS[1]})"
    grouped_t, overall_t = [], []
    for i in range(env["repeat"] + 1):
        t = time.perf_counter()
        rows = con.execute(f"SELECT town, count(*), sum({clamp}) FROM {src} GROUP BY town").fetchall()
        count = Geometric(epsilon=EPSILON / 2, sensitivity=1)
        total = Laplace(epsilon=EPSILON / 4, sensitivity=BOUNDS[1])
        counts2 = Geometric(epsilon=EPSILON / 4, sensitivity=1)
        released = {
            town: (count.randomise(int(n)), total.randomise(float(s)) / max(counts2.randomise(int(n)), 1))
            for town, n, s in rows
        }
        assert len(released) == len(rows)
        if i:
            grouped_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        n, s = con.execute(f"SELECT count(*), sum({clamp}) FROM {src}").fetchone()  # type: ignore[misc]
        Laplace(epsilon=EPSILON / 2, sensitivity=BOUNDS[1]).randomise(float(s)) / max(
            Geometric(epsilon=EPSILON / 2, sensitivity=1).randomise(int(n)), 1
        )
        if i:
            overall_t.append(time.perf_counter() - t)
    return {"grouped": grouped_t, "overall": overall_t, "peak_rss": _peak_rss()}


CHILDREN = {
    "setup": child_setup,
    "service": child_service,
    "diffprivlib": child_diffprivlib,
    "duckdb": child_duckdb,
}


def run_child(name: str, env: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, "--env", json.dumps(env)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {name} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="calls per path per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every path")
    parser.add_argument("--child")
    parser.add_argument("--env")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.env))))
        return

    from lab.storage.seaweed import start_seaweed

    work = Path(tempfile.mkdtemp(prefix="lab-bench-dp-"))
    parquet = work / "bench_population.parquet"
    t = time.perf_counter()
    generate(args.rows, parquet)
    size = parquet.stat().st_size / MIB
    print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s ({size:.0f} MiB)")
    seaweed = start_seaweed(work / "seaweed", "bench", "bench-secret-0123456789")
    runs: dict[str, list[dict[str, Any]]] = {"service": [], "diffprivlib": [], "duckdb": []}
    try:
        env = {
            "dir": str(work),
            "parquet": str(parquet),
            "endpoint": seaweed.endpoint,
            "access_key": seaweed.access_key,
            "secret_key": seaweed.secret_key,
            "repeat": args.repeat,
        }
        setup = run_child("setup", env)
        env["project"] = setup["project"]
        print(
            f"setup (catalog import into SeaweedFS + SQLite): {setup['import_s']:.1f} s, "
            f"peak RSS {setup['peak_rss'] / MIB:.0f} MiB"
        )
        for r in range(args.rounds):  # interleaved, so a noisy neighbour hits every path alike
            env["round"] = r
            runs["service"].append(run_child("service", env))
            env["parquet"] = runs["service"][0]["parquet"]  # the baselines read the very file the lab serves
            runs["diffprivlib"].append(run_child("diffprivlib", env))
            runs["duckdb"].append(run_child("duckdb", env))
    finally:
        seaweed.stop()
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    def pooled(path: str, key: str) -> list[float]:
        return [x for run in runs[path] for x in run[key]]

    def peak(path: str) -> float:
        return max(run["peak_rss"] for run in runs[path]) / MIB

    rows = [
        (
            "service: HTTP endpoint",
            pooled("service", "http_grouped"),
            pooled("service", "http_overall"),
            peak("service"),
        ),
        (
            "service: function (no HTTP)",
            pooled("service", "call_grouped"),
            pooled("service", "call_overall"),
            peak("service"),
        ),
        (
            "(a) diffprivlib tools + numpy",
            pooled("diffprivlib", "grouped"),
            pooled("diffprivlib", "overall"),
            peak("diffprivlib"),
        ),
        (
            "(b) DuckDB exact + noise",
            pooled("duckdb", "grouped"),
            pooled("duckdb", "overall"),
            peak("duckdb"),
        ),
    ]
    n = len(rows[0][1])
    print(f"\n{args.rows:,} rows; {n} calls per path in {args.rounds} interleaved rounds; ε = {EPSILON} each")
    print(f"{'path':31} {'grouped median (min)':>21} {'ungrouped median (min)':>23} {'peak RSS':>9}")
    for name, g, o, rss in rows:
        print(f"{name:31} {_median(g):12.3f} ({min(g):.3f}) {_median(o):14.3f} ({min(o):.3f}) {rss:5.0f} MiB")
    first = runs["service"][0]
    print(
        f"(a) load alone {runs['diffprivlib'][0]['load']:.3f} s; service: first query of the version "
        f"(download + verify + bounding check) {first['first']:.2f} s, identical-query replay "
        f"{_median([r['replay'] for r in runs['service']]):.3f} s"
    )
    svc, dpl, duck = _median(rows[0][1]), _median(rows[2][1]), _median(rows[3][1])
    worker = max(run["worker_peak_rss"] for run in runs["service"]) / MIB
    print(f"DP worker processes (compute off the serving process): largest peak RSS {worker:.0f} MiB")
    ok = dpl / svc >= 3 and svc / duck <= 2 and peak("service") < 1024 and worker < 1024
    verdict = "MET" if ok else "NOT MET"
    print(
        f"grouped: endpoint {dpl / svc:.1f}x faster than (a) [target >= 3x], "
        f"{svc / duck:.2f}x the time of (b) [target <= 2x]; "
        f"serving peak RSS {peak('service'):.0f} MiB, worker {worker:.0f} MiB [target < 1024 each] "
        f"-> {verdict}"
    )


if __name__ == "__main__":
    main()
