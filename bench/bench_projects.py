"""Benchmark the audit middleware's cost per request and the atomic spend, each next to its baseline.

Usage::

    .venv/bin/python bench/bench_projects.py                      # SQLite, 2000 requests, 300 spends
    .venv/bin/python bench/bench_projects.py --db postgresql+psycopg://postgres@127.0.0.1:5432/test

* **audit** — ``GET /healthz`` (one ``SELECT 1``) through an in-process ``TestClient`` of the real app,
  with the audit middleware (every request queued and written by the background thread; the time to
  drain the queue at the end is included) and, as baseline, the same app with the middleware removed.
* **spend** — ``authorize`` + ``commit_result`` (lock, debit, derived record, ledger entry) of ε=0.001 in
  one transaction, sequentially and from 8 threads; baseline: the same transaction without
  ``commit_result`` (authorize only) — the price of the atomic charge.

No object storage is needed: the dataset version row is written directly (no Parquet is read).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from lab.api.main import create_app
from lab.api.routes.audit import AuditMiddleware, writer_for
from lab.budgets import Budget
from lab.catalog.models import DatasetRow, DatasetVersionRow
from lab.catalog.policy import load_policy
from lab.db.base import utcnow
from lab.db.migrate import upgrade
from lab.identity import Principal
from lab.projects.access import authorize, commit_result, no_channel_params
from lab.runtime import Runtime
from lab.settings import S3Settings, Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.factories
from tests.factories import active_project  # noqa: E402


def _runtime(db: str | None, tmp: Path) -> tuple[Runtime, str | None]:
    created = None
    if db:
        name = f"lab_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(db, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url, created = db.rsplit("/", 1)[0] + f"/{name}", name
    else:
        url = f"sqlite:///{tmp / 'bench.sqlite'}"
    upgrade(url)
    s = Settings(data_dir=tmp, database_url=url, s3=S3Settings(endpoint="127.0.0.1:1"))  # type: ignore[call-arg]
    s.projects.sweep_seconds = 0
    return Runtime(s), created


def _dataset(rt: Runtime) -> None:
    pol = load_policy(ROOT / "policies" / "population.yaml")
    now = utcnow()
    with rt.transaction() as s:
        s.add(DatasetRow(id="population", current_version=1, created_at=now, updated_at=now))
        s.flush()
        s.add(
            DatasetVersionRow(
                dataset_id="population", version=1, policy=pol.model_dump(mode="json"), sha256="0" * 64,
                bucket="none", object_key="none", size_bytes=0, row_count=0, imported_by="bench",
                imported_at=now, ledger_index=0,
            )
        )  # fmt: skip


def bench_audit(rt: Runtime, n: int) -> None:
    def run(with_audit: bool) -> tuple[float, float]:
        app = create_app(runtime=rt)
        if not with_audit:
            app.user_middleware = [m for m in app.user_middleware if m.cls is not AuditMiddleware]
        with TestClient(app) as client:
            for _ in range(50):
                client.get("/healthz")
            writer_for(app).flush()
            t = time.perf_counter()
            for _ in range(n):
                client.get("/healthz")
            answered = time.perf_counter() - t
            writer_for(app).flush()
            return answered / n * 1e6, (time.perf_counter() - t) / n * 1e6

    bases, runs = [], []
    for _ in range(4):  # interleaved, so that load from other processes hits both alike
        bases.append(run(False)[0])
        runs.append(run(True))
    base = statistics.median(bases)
    audited, drained = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    with rt.transaction() as s:
        rows = s.execute(sa.text("SELECT count(*) FROM audit_requests")).scalar_one()
    pct = (audited / base - 1) * 100
    print(f"audit   baseline {base:8.0f} µs/request   with audit {audited:8.0f} µs/request ({pct:+.1f} %)")
    print(f"audit   including writing every row: {drained:8.0f} µs/request; {rows} rows written")


def bench_middleware(rt: Runtime, n: int) -> None:
    """The middleware alone around a trivial ASGI app: its own added latency per request."""
    import asyncio

    from starlette.types import Receive, Scope, Send

    class App:
        state = type("State", (), {})()

    App.state.runtime = rt

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        return None

    def scope() -> dict[str, object]:
        return {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b"", "app": App}

    async def loop(app: object) -> float:
        t = time.perf_counter()
        for _ in range(n):
            await app(scope(), receive, send)  # type: ignore[operator]
        return (time.perf_counter() - t) / n * 1e6

    bare = statistics.median(asyncio.run(loop(inner)) for _ in range(3))
    audited = statistics.median(asyncio.run(loop(AuditMiddleware(inner))) for _ in range(3))
    writer_for(App).flush()
    writer_for(App).close()
    print(f"audit   middleware alone: {audited - bare:5.1f} µs added per request (bare app {bare:.1f} µs)")


def bench_spend(rt: Runtime, n: int) -> None:
    alice = Principal.from_groups("alice", ["operator"])
    pid = active_project(rt, {"population": {"dp": {"epsilon": "100", "epsilon_per_query": "1"}}})

    def one(charge: bool) -> None:
        with rt.transaction() as s:
            acc = authorize(
                s, alice, pid, "population", "dp", "query", {"epsilon": "0.001"}, check=no_channel_params
            )
            if charge:
                commit_result(
                    s, rt.ledger(s), acc, cost=Budget.of("0.001"), parameters={}, result_digest="0" * 64
                )

    for label, charge in (("authorize only (baseline)", False), ("authorize + commit_result", True)):
        t = time.perf_counter()
        for _ in range(n):
            one(charge)
        seq = (time.perf_counter() - t) / n * 1e3
        t = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, [charge] * n))
        par = n / (time.perf_counter() - t)
        print(f"spend   {label:28} {seq:6.2f} ms sequential   {par:7.0f} /s from 8 threads")
    with rt.transaction() as s:
        spent = s.execute(sa.text("SELECT epsilon_spent FROM project_budgets")).scalar_one()
    print(f"spend   budget spent after {2 * n} charges of 0.001: {spent} (exact)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", help="PostgreSQL admin URL (default: SQLite in a temp dir)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--spends", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rt, created = _runtime(args.db, Path(tmp))
        try:
            print(f"database: {rt.engine.dialect.name}")
            _dataset(rt)
            bench_middleware(rt, 5 * args.requests)
            bench_audit(rt, args.requests)
            bench_spend(rt, args.spends)
        finally:
            rt.close()
            if created:
                admin = sa.create_engine(args.db, isolation_level="AUTOCOMMIT")
                with admin.connect() as c:
                    c.execute(sa.text(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
