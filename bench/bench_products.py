"""Disclosure-check cost on a tabular artifact, next to a baseline measured in the same run.

Usage: .venv/bin/python bench/bench_products.py [--ids 200000] [--rows 50000]

Builds a non-open "dataset" of ``--ids`` resident IDs (Parquet) and an artifact CSV of ``--rows``
rows whose ``id_card`` column holds 50% of them, then times:

* baseline — reading the artifact with pandas (what any check must at least do);
* identifiers — sampling, normalizing and testing every column against the dataset with DuckDB;
* small_counts — the count-cell scan.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
from pathlib import Path

import pandas as pd

from lab.identifiers import make_resident_id
from lab.products import checks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ids", type=int, default=200_000)
    ap.add_argument("--rows", type=int, default=50_000)
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        base = dt.date(1950, 1, 1)
        ids = [
            make_resident_id("310230", base + dt.timedelta(days=rng.randrange(25_000)), rng.randrange(1, 999))
            for _ in range(args.ids)
        ]
        parquet = Path(tmp) / "population.parquet"
        pd.DataFrame({"resident_id": ids}).to_parquet(parquet)
        leaked = [ids[rng.randrange(len(ids))] if i % 2 else f"C{i:08d}" for i in range(args.rows)]
        art = Path(tmp) / "artifact.csv"
        pd.DataFrame(
            {
                "id_card": leaked,
                "town": [f"town{i % 18}" for i in range(args.rows)],
                "count": [rng.randrange(0, 500) for _ in range(args.rows)],
                "score": [rng.random() for _ in range(args.rows)],
            }
        ).to_csv(art, index=False)
        target = checks.IdentifierTarget("population", 1, "resident_id", "resident_id", parquet)

        t0 = time.perf_counter()
        pd.read_csv(art, dtype=str, keep_default_na=False)
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        tables = checks.load_tables(art, "csv")
        load = time.perf_counter() - t0
        t0 = time.perf_counter()
        ident = checks.identifiers(tables, [target])
        ident_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        counts = checks.small_counts(tables, 10, ["population (psi)"], has_dp=False)
        counts_s = time.perf_counter() - t0
    rate = next(c["match_rate"] for c in ident["data"]["columns"] if c["column"] == "id_card")
    print(f"dataset {args.ids:,} resident IDs; artifact {args.rows:,} rows x 4 columns")
    print(f"baseline read_csv    {baseline * 1000:8.1f} ms")
    print(f"load_tables         {load * 1000:8.1f} ms")
    print(f"identifiers check   {ident_s * 1000:8.1f} ms  (id_card match {rate:.1%}, {ident['status']})")
    print(f"small_counts check  {counts_s * 1000:8.1f} ms  ({counts['status']})")


if __name__ == "__main__":
    main()
