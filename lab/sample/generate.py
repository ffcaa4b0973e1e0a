"""Generate the synthetic Chongming sample catalog: one file per dataset plus its policies.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     rows = generate(200, Path(d))
...     files = sorted(f.name for f in Path(d).glob("*.parquet"))
...     copied = sorted(f.name for f in Path(d, "policies").iterdir())
>>> files == sorted(f"{n}.parquet" for n in DATASETS), copied == sorted(f"{n}.yaml" for n in DATASETS)
(True, True)
>>> rows["population"], rows["enterprise_registry"], rows["environment_monitoring"]
(200, 20, 1080)

Invariants:

* **Schema**: each file has exactly its policy's columns and types; categorical values come
  from the policy domains and numbers lie within the policy bounds. The policies are read
  from ``policy_dir`` and copied unchanged to ``out/policies/``.
* **Sizes**: ``scale`` residents; ``scale/10`` enterprises; tax rows for about 70% of them
  (one row per taxpayer and year since establishment, up to 3), social insurance for about
  60% (one row per quarter since establishment), health rows for about 60% of residents
  (1-3 years), and 36 stations (two per town) times ``min(365, max(30, scale // 1000))`` days.
* **Joins**: ``health_visits`` people are population residents; ``tax_credit`` and
  ``social_insurance`` USCCs are registry USCCs plus about 2% that are not.
* **Determinism**: every value is a pure function of ``(seed, scale, index)``, so the same
  scale and seed give byte-identical files (with the same library versions on the same
  platform); ``chunk_rows`` changes only the files' row-group layout, never the rows.
* **Bounded memory**: rows are generated and written ``chunk_rows`` source entities at a time;
  nothing proportional to ``scale`` is held except a per-birth-date table (about 40k days).
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Collection
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from lab.catalog.policy import Policy, load_policy
from lab.sample._enterprises import EnterpriseModel
from lab.sample._environment import STATIONS_PER_TOWN, environment_table, monitoring_days
from lab.sample._people import PeopleModel
from lab.sample._tables import GENERATOR_VERSION, Format, Sink, arrow_schema, domain

DATASETS = (
    "population",
    "enterprise_registry",
    "tax_credit",
    "social_insurance",
    "health_visits",
    "environment_monitoring",
)
DEFAULT_SEED = 20260101
CHUNK_ROWS = 131_072

Chunk = Callable[[int, int], pa.Table]


def default_policy_dir() -> Path:
    """The sample policies: ``lab/policies`` when packaged, else the repository's ``policies/``."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "policies", here.parent / "policies"):
        if (candidate / "population.yaml").is_file():
            return candidate
    raise FileNotFoundError("sample policies not found in lab/policies or policies/; pass policy_dir")


def load_policies(policy_dir: Path, names: Collection[str] = DATASETS) -> dict[str, Policy]:
    """Load and validate ``<name>.yaml`` for each dataset."""
    policies = {}
    for name in names:
        policy = load_policy(policy_dir / f"{name}.yaml")
        if policy.dataset != name:
            raise ValueError(f"{policy_dir / name}.yaml declares dataset {policy.dataset!r}")
        policies[name] = policy
    return policies


def enterprise_count(scale: int) -> int:
    """Enterprises in the registry for ``scale`` residents."""
    return max(1, round(scale / 10))


def generate(
    scale: int,
    out: Path,
    seed: int = DEFAULT_SEED,
    fmt: Format = "parquet",
    progress: bool = False,
    *,
    policy_dir: Path | None = None,
    datasets: Collection[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> dict[str, int]:
    """Write the sample catalog for ``scale`` residents to ``out``; return rows per dataset.

    ``datasets`` restricts the output to some datasets (all six by default); ``progress``
    shows a tqdm bar on stderr.
    """
    if scale < 1:
        raise ValueError("scale is the number of residents, at least 1")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"unknown format {fmt!r}: parquet or csv")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be positive")
    names = DATASETS if datasets is None else tuple(d for d in DATASETS if d in set(datasets))
    unknown = set(datasets or ()) - set(DATASETS)
    if unknown:
        raise ValueError(f"unknown datasets {sorted(unknown)}; choose from {list(DATASETS)}")
    policy_dir = policy_dir or default_policy_dir()
    policies = load_policies(policy_dir, DATASETS)
    jobs = _jobs(scale, seed, policies)  # validates scale against the identifier spaces
    out.mkdir(parents=True, exist_ok=True)
    (out / "policies").mkdir(exist_ok=True)
    selected = [(name, *jobs[name]) for name in names]
    rows: dict[str, int] = {}
    with tqdm(total=sum(n for _, n, _ in selected), unit=" entities", disable=not progress) as bar:
        for name, sources, chunk in selected:
            bar.set_description(name)
            meta = {
                "lab.dataset": name,
                "lab.generator": GENERATOR_VERSION,
                "lab.seed": str(seed),
                "lab.scale": str(scale),
            }
            path = out / f"{name}.{fmt}"
            with Sink(path, arrow_schema(policies[name]), fmt, meta) as sink:
                for start in range(0, sources, chunk_rows):
                    stop = min(sources, start + chunk_rows)
                    sink.write(chunk(start, stop))
                    bar.update(stop - start)
            rows[name] = sink.rows
            shutil.copyfile(policy_dir / f"{name}.yaml", out / "policies" / f"{name}.yaml")
    return rows


def _jobs(scale: int, seed: int, policies: dict[str, Policy]) -> dict[str, tuple[int, Chunk]]:
    """Per dataset: how many source entities it iterates over, and the chunk function."""
    people = PeopleModel(scale, seed, policies["population"], policies["health_visits"])
    n = enterprise_count(scale)
    firms = EnterpriseModel(
        n, seed, policies["enterprise_registry"], policies["tax_credit"], policies["social_insurance"]
    )
    env = policies["environment_monitoring"]
    whole_env = functools.cache(lambda: environment_table(env, scale, seed))
    stations = len(domain(env, "town")) * STATIONS_PER_TOWN
    return {
        "population": (scale, people.population_chunk),
        "enterprise_registry": (n, firms.registry_chunk),
        "tax_credit": (n + firms.n_external_tax, firms.tax_chunk),
        "social_insurance": (n + firms.n_external_insurance, firms.insurance_chunk),
        "health_visits": (scale, people.health_chunk),
        # Small enough to build at once; the "sources" are its rows.
        "environment_monitoring": (
            stations * monitoring_days(scale),
            lambda a, b: whole_env().slice(a, b - a),
        ),
    }
