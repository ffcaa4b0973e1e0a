"""Two lab API processes (real uvicorn replicas) on one PostgreSQL never overspend a dataset account.

Three projects send 50 DP queries (ε = 0.5 each, every one a distinct spec so none is a free
replay) split across the two replicas. ``population`` allows ε = 8 per year and each project ε = 5,
so exactly 16 are charged; the rest are refused with the account named, and nothing else is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from lab.budgets.models import DatasetAccountRow, DatasetChargeRow
from lab.db.migrate import upgrade
from lab.projects.models import BudgetRow
from lab.records.models import DerivedRecordRow
from lab.runtime import Runtime
from lab.settings import Settings
from lab.storage.seaweed import SeaweedServer, free_port_block
from tests.conftest import PG_ADMIN_URL, HubHandle, _pg_database, _pg_unreachable, make_settings
from tests.factories import active_project
from tests.integration._projects import import_catalog

pytestmark = [pytest.mark.integration, pytest.mark.hub, pytest.mark.slow]


@pytest.fixture
def pg_runtime(seaweed: SeaweedServer, hub: HubHandle, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on a fresh PostgreSQL database (replicas need a server database)."""
    reason = _pg_unreachable()
    if reason:  # as the db_url fixture: CI never skips the PostgreSQL tests
        message = f"no PostgreSQL at {PG_ADMIN_URL} ({reason}); start one there or set LAB_TEST_PG"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    for url in _pg_database():
        settings = make_settings(url, tmp_path / "data", seaweed, hub.settings)
        upgrade(settings.db_url)
        rt = Runtime(settings)
        rt.store.ensure_buckets()
        yield rt
        rt.close()


def replica_env(settings: Settings) -> dict[str, str]:
    """What makes a replica agree with this process on database, storage, keys and the Hub."""
    s3, hub = settings.s3, settings.hub
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LAB_")},
        "LAB_DATA_DIR": str(settings.data_dir.resolve()),
        "LAB_DATABASE_URL": settings.db_url,
        "LAB_SECRET_KEY": settings.secret_key.get_secret_value(),
        "LAB_S3__ENDPOINT": s3.endpoint,
        "LAB_S3__ACCESS_KEY": s3.access_key,
        "LAB_S3__SECRET_KEY": s3.secret_key.get_secret_value(),
        "LAB_S3__BUCKET_RAW": s3.bucket_raw,
        "LAB_S3__BUCKET_PRODUCTS": s3.bucket_products,
        "LAB_S3__BUCKET_WORK": s3.bucket_work,
        "LAB_HUB__API_URL": hub.api_url,
        "LAB_HUB__API_TOKEN": hub.api_token.get_secret_value(),
        "LAB_HUB__PUBLIC_URL": hub.public_url,
        # one Hub lookup per replica: the test is about the account, not about a busy shared Hub
        "LAB_HUB__TOKEN_CACHE_SECONDS": "300",
        "LAB_PROJECTS__SWEEP_SECONDS": "0",
        # every one of the 50 spends must reach the account: admission control stays out of the way
        "LAB_ADMISSION__PER_CALLER": "64",
        "LAB_ADMISSION__PER_PROJECT": "64",
        "LAB_ADMISSION__MAX_IN_FLIGHT": "64",
    }


@pytest.fixture
def replicas(pg_runtime: Runtime, tmp_path: Path) -> Iterator[list[str]]:
    """Two ``uvicorn --factory lab.api.main:app_factory`` processes; their base URLs."""
    port = free_port_block(2, 41000, 49000)
    env = replica_env(pg_runtime.settings)
    procs, urls = [], []
    for i in range(2):
        log = (tmp_path / f"replica{i}.log").open("wb")
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "lab.api.main:app_factory"]
        cmd += ["--host", "127.0.0.1", "--port", str(port + i), "--no-access-log"]
        procs.append(subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
        urls.append(f"http://127.0.0.1:{port + i}")
    try:
        deadline = time.monotonic() + 60
        for url, proc in zip(urls, procs, strict=True):
            while True:
                assert proc.poll() is None, (tmp_path / "replica0.log").read_text()
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "replica did not start"
                time.sleep(0.3)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_fifty_spends_across_two_replicas_never_overspend_the_dataset_account(
    pg_runtime: Runtime, replicas: list[str], hub: HubHandle, tmp_path: Path
) -> None:
    runtime = pg_runtime
    import_catalog(runtime, ["population"])
    grant = {"dp": {"epsilon": "5", "epsilon_per_query": "1"}}
    pids = [active_project(runtime, {"population": grant}, ["alice"]) for _ in range(3)]
    headers = {"Authorization": f"token {hub.token_for('alice', ['operator'])}"}

    def attempt(i: int) -> tuple[int, str]:
        body = {
            "dataset": "population",
            "select": [{"agg": "count"}],
            "where": [{"column": "age", "op": "ge", "value": i}],
            "epsilon": "0.5",
        }
        url = f"{replicas[i % 2]}/api/v1/projects/{pids[i % 3]}/dp/query"
        for _ in range(5):  # 429/503 charge nothing and say "retry", as a client would
            r = httpx.post(url, json=body, headers=headers, timeout=120)
            if r.status_code not in (429, 503):
                break
            time.sleep(float(r.headers.get("Retry-After", "1")))
        return r.status_code, r.text

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    statuses = [s for s, _ in outcomes]
    odd = [o for o in outcomes if o[0] not in (200, 409)]
    logs = "\n".join((tmp_path / f"replica{i}.log").read_text()[-4000:] for i in range(2))
    assert statuses.count(200) == 16 and statuses.count(409) == 34, (odd or outcomes, logs)
    refusals = [json.loads(t) for s, t in outcomes if s == 409]
    assert all(r["code"] == "budget-exhausted" for r in refusals)
    assert any(r.get("account", {}).get("dataset") == "population" for r in refusals)  # the account is named
    with runtime.transaction() as s:
        account = s.get(DatasetAccountRow, "population")
        assert account is not None and (account.epsilon_spent, account.spends) == ("8", 16)
        assert s.execute(select(func.count()).select_from(DatasetChargeRow)).scalar_one() == 16
        assert s.execute(select(func.count()).select_from(DerivedRecordRow)).scalar_one() == 16
        # and no project's own budget (ε = 5) was overspent: the three add up to the account
        spent = [Decimal(b.epsilon_spent) for b in s.execute(select(BudgetRow)).scalars()]
        assert sum(spent) == 8 and all(e <= 5 for e in spent)
        assert runtime.ledger(s).verify().ok
