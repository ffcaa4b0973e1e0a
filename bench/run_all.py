"""Run every benchmark with its documented defaults (``make bench`` / ``lab bench``).

Each benchmark prints its own figures next to a baseline measured in the same run; this script only
runs them one after another (they are heavy: ~10M-row DP, 1M-item PSI, 100k-record HE) and reports
which failed. ``--quick`` runs them at small sizes to check they still work.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FULL: dict[str, list[str]] = {
    "bench_sample.py": ["--scale", "1000000"],
    "bench_ledger.py": ["--entries", "100000"],
    "bench_projects.py": [],
    "bench_dp.py": [],
    "bench_psi.py": [],
    "bench_he.py": [],
    "bench_products.py": [],
    "bench_witness.py": ["--entries", "100000"],
}
QUICK: dict[str, list[str]] = {
    "bench_sample.py": ["--scale", "20000"],
    "bench_ledger.py": ["--entries", "2000"],
    "bench_projects.py": ["--requests", "100", "--spends", "20"],
    "bench_dp.py": ["--rows", "100000", "--repeat", "1", "--rounds", "1"],
    "bench_psi.py": ["--client", "1000", "--server", "10000", "--repeat", "1"],
    "bench_he.py": ["--records", "2000", "--naive", "50", "--repeat", "1"],
    "bench_products.py": ["--ids", "5000", "--rows", "2000"],
    "bench_witness.py": ["--entries", "2000", "--batches", "10"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes: check the benchmarks run")
    ap.add_argument("only", nargs="*", help="benchmark names to run (default: all)")
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else FULL
    failed = []
    for name, extra in plan.items():
        if args.only and not any(o in name for o in args.only):
            continue
        if not (HERE / name).exists():
            continue
        print(f"\n=== {name} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / name), *extra])
        print(f"=== {name}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
