"""Light requests under heavy DP load: p50/p95 latency of ``GET /catalog`` idle vs. while N heavy
queries run, in the same run, against a real uvicorn server of the lab API.

Usage::

    .venv/bin/python bench/bench_load.py                    # scale 20000, 6 heavy clients
    .venv/bin/python bench/bench_load.py --heavy 6 --light 40 --scale 20000
    .venv/bin/python bench/bench_load.py --admission off    # limits lifted: the pre-issue-17 behaviour

The heavy query is issue 17's: 5 quantiles × 19 levels over town × education × gender (17,100
values, ε 0.001 each, a distinct ε per call so none is a replay). Each heavy client loops over it;
a 429 (admission control) makes it wait ``Retry-After`` (capped at 1 s here) and try again. The
light client reads the catalog ``--light`` times idle, then the same number of times under load.
SQLite, SeaweedFS and the sample catalog as ``lab up`` has them; callers are a bench double of the
Hub (a header names the user), so the figures measure the lab API alone.

Target: light p95 under load within 3× the idle p95.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import Request

from lab.identity import Principal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.factories

LEVELS = [f"0.{j:02d}" for j in range(5, 100, 5)]
COLUMNS = ["age", "monthly_income", "household_size", "employed", "age"]


def emit(line: str) -> None:
    print(line, flush=True)


def heavy_spec(i: int) -> dict[str, Any]:
    select = [
        {"agg": "quantile", "column": c, "quantiles": LEVELS, "name": f"q{k}"} for k, c in enumerate(COLUMNS)
    ]
    eps = f"{0.001 + i * 1e-7:.7f}"
    return {
        "dataset": "population",
        "select": select,
        "group_by": ["town", "education", "gender"],
        "epsilon": eps,
    }


def bench_principal(request: Request) -> Principal:
    """Bench double of the Hub: the ``x-bench-user`` header names the caller."""
    return Principal.from_groups(request.headers.get("x-bench-user", "alice"), ["operator"])


def _serve(rt: Any) -> tuple[Any, str]:
    import uvicorn

    from lab.api.deps import get_principal
    from lab.api.main import create_app

    app = create_app(runtime=rt)
    app.dependency_overrides[get_principal] = bench_principal
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def light(url: str, n: int) -> list[float]:
    import httpx

    out = []
    with httpx.Client(base_url=url, timeout=300, headers={"x-bench-user": "bob"}) as http:
        for _ in range(n):
            t = time.perf_counter()
            http.get("/api/v1/catalog").raise_for_status()
            out.append(time.perf_counter() - t)
            time.sleep(0.05)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=20_000, help="sample catalog scale (population rows)")
    parser.add_argument("--heavy", type=int, default=6, help="concurrent heavy clients")
    parser.add_argument("--light", type=int, default=40, help="light requests per phase")
    parser.add_argument("--admission", choices=["on", "off"], default="on")
    args = parser.parse_args()

    import httpx

    from lab.db.migrate import upgrade
    from lab.runtime import Runtime
    from lab.settings import AdmissionSettings, S3Settings, Settings
    from lab.storage.seaweed import start_seaweed
    from tests.factories import active_project, import_sample

    work = Path(tempfile.mkdtemp(prefix="lab-bench-load-"))
    seaweed = start_seaweed(work / "seaweed", "bench", "bench-secret-0123456789")
    try:
        admission = AdmissionSettings()
        if args.admission == "off":
            admission = AdmissionSettings(
                workers=64, per_caller=10_000, per_project=10_000, max_in_flight=10_000, max_cost=1e30
            )
        settings = Settings(  # type: ignore[call-arg]
            data_dir=work / "data",
            database_url=f"sqlite:///{work / 'lab.sqlite'}",
            secret_key="bench-secret-key-0123456789abcdef",
            s3=S3Settings(
                endpoint=seaweed.endpoint, access_key=seaweed.access_key, secret_key=seaweed.secret_key
            ),  # type: ignore[arg-type]
            admission=admission,
        )
        rt = Runtime(settings)
        upgrade(settings.db_url)
        rt.store.ensure_buckets()
        import_sample(rt, ["population"], args.scale, work / "sample")
        grant = {"population": {"dp": {"epsilon": "5.0", "delta": "0"}}}
        project = active_project(rt, grant, members=["alice"])
        server, url = _serve(rt)
        path = f"/api/v1/projects/{project}/dp/query"
        with httpx.Client(base_url=url, timeout=600) as http:  # warm: bounded copy, caches, first plan
            t = time.perf_counter()
            warm = http.post(path, json=heavy_spec(10_000), headers={"x-bench-user": "alice"})
            if warm.status_code != 200:
                raise SystemExit(f"the heavy query failed: {warm.status_code} {warm.text[:500]}")
            one = time.perf_counter() - t
        light(url, 5)
        idle = light(url, args.light)

        stop = threading.Event()
        counts = {"ok": 0, "busy": 0, "other": 0}
        heavy_times: list[float] = []
        lock = threading.Lock()

        def heavy(worker: int) -> None:
            i = 0
            with httpx.Client(base_url=url, timeout=600, headers={"x-bench-user": "alice"}) as http:
                while not stop.is_set():
                    i += 1
                    t = time.perf_counter()
                    r = http.post(path, json=heavy_spec(worker * 1000 + i))
                    with lock:
                        if r.status_code == 200:
                            counts["ok"] += 1
                            heavy_times.append(time.perf_counter() - t)
                        elif r.status_code == 429:
                            counts["busy"] += 1
                        else:
                            counts["other"] += 1
                    if r.status_code == 429:
                        stop.wait(min(1.0, float(r.headers.get("retry-after", "1"))))

        threads = [threading.Thread(target=heavy, args=(w,)) for w in range(args.heavy)]
        for th in threads:
            th.start()
        time.sleep(1.0)
        loaded = light(url, args.light)
        stop.set()
        for th in threads:
            th.join()
        server.should_exit = True
        rt.close()
    finally:
        seaweed.stop()

    def row(name: str, xs: list[float]) -> str:
        p50, p95, top = statistics.median(xs) * 1000, pct(xs, 95) * 1000, max(xs) * 1000
        return f"  {name:<22} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   max {top:8.1f} ms"

    emit(f"lab API, SQLite + SeaweedFS, population at scale {args.scale}, admission {args.admission}")
    emit(f"one heavy query alone (warm-up): {one:.2f} s; {args.heavy} heavy clients in the loaded phase")
    emit(f"GET /api/v1/catalog, {args.light} requests per phase:")
    emit(row("idle", idle))
    emit(row(f"under {args.heavy} heavy clients", loaded))
    ratio = pct(loaded, 95) / pct(idle, 95)
    emit(f"  p95 ratio loaded/idle: {ratio:.2f}× (target ≤ 3×) {'OK' if ratio <= 3 else 'MISSED'}")
    done = f"heavy queries: {counts['ok']} answered"
    if heavy_times:
        done += f" (median {statistics.median(heavy_times):.2f} s)"
    emit(f"{done}, {counts['busy']} refused with 429 and retried, {counts['other']} other")


if __name__ == "__main__":
    main()
