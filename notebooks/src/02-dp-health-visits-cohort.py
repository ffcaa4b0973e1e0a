# %% [markdown]
# # Health-care use of an insurer's policyholders: a PSI cohort and differential privacy
#
# **Scenario.** A health insurer plans a supplementary product for Chongming residents and needs the
# yearly outpatient visits and medical costs of **its own policyholders**, by age band, compared with all
# residents in the health-visit records. The records are personal information (non-open): the insurer may
# never see one, nor learn which of its policyholders had a visit.
#
# 1. **PSI, cohort mode** — roles reversed: the lab learns which of *its* health-visit records match the
#    insurer's list and keeps that cohort server-side under the project; the insurer gets only a DP-noised
#    size (never membership).
# 2. **Differential privacy** — aggregate queries over the cohort and over everyone, each spending ε from
#    the project's budget for `health_visits`, with 95% error bounds published alongside the values.
# 3. **Product registration** of the comparison table.

# %%
import os
import tempfile
from datetime import date
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import tqdm

import lab.client as lc
from lab.identifiers import make_resident_id

c = lc.connect()
project = os.environ.get("LAB_PROJECT") or os.environ["LAB_PROJECTS"].split(",")[0]
c.use(project)
c.projects.budget()

# %% [markdown]
# ## The insurer's policyholders
#
# In real life: the insurer's policy administration system. This demo **simulates** 1,500 policyholders
# living in Chongming (drawn with the lab's public sample generator, which made the demo catalog) and
# 300 living elsewhere in Shanghai.

# %%
residents = int(c.catalog.get("population")["row_count"])

from lab.sample.generate import generate  # noqa: E402

workdir = Path(tempfile.mkdtemp())
generate(residents, workdir, datasets=["population"])
people = pd.read_parquet(workdir / "population.parquet", columns=["resident_id", "age"])

rng = np.random.default_rng(11)
local = people[people["age"] >= 18].sample(1500, random_state=5)["resident_id"]
elsewhere = [
    make_resident_id("310104", date(int(y), int(m), 15), int(s))
    for y, m, s in tqdm(
        zip(rng.integers(1950, 2005, 300), rng.integers(1, 13, 300), rng.integers(0, 999, 300), strict=True),
        total=300,
        desc="simulated policyholders",
    )
]
policyholders = pd.Series(list(local) + elsewhere, name="resident_id").sample(frac=1, random_state=2)
len(policyholders)

# %% [markdown]
# ## 1. A server-side cohort (PSI, cohort mode)

# %%
cohort = c.psi.intersect(
    policyholders, dataset="health_visits", column="resident_id", mode="cohort", progress=True
)
print(
    f"cohort {cohort.cohort_id}: about {cohort.noisy_size} ± {cohort.error_bound_95} people "
    f"(ε {cohort.epsilon}; expires {cohort.expires_at})"
)

# %% [markdown]
# ## 2. What will the queries cost, and how accurate will they be?
#
# A preview computes the ε cost and the expected 95% error bounds without touching data or the budget.

# %%
# the policy bounds visits to [0, 60] and costs to [0, 100000] yuan; narrower clamping bounds (never
# wider) cut the noise a lot at the price of clamping the few heaviest users
select = [
    "count",
    {"agg": "mean", "column": "visits", "bounds": [0, 24]},
    {"agg": "mean", "column": "cost", "bounds": [0, 20000]},
]
preview = c.dp.preview(
    "health_visits",
    select=select,
    group_by="age_band",
    cohort=cohort.cohort_id,
    epsilon=0.6,
    assumed_count=max(cohort.noisy_size, 100),
)
print("cost:", preview.cost, "| remaining before:", preview.remaining)
preview.frame

# %% [markdown]
# ## 3. The DP queries

# %%
queries = {
    "policyholders": dict(cohort=cohort.cohort_id, epsilon=0.6),
    "all residents": dict(cohort=None, epsilon=0.6),
}
results = {}
for label, q in tqdm(queries.items(), desc="DP queries"):
    results[label] = c.dp.query("health_visits", select=select, group_by="age_band", **q)
    print(label, results[label])

# %%
table = pd.concat([r.wide().assign(population=label) for label, r in results.items()], ignore_index=True)
table = table[
    [
        "population",
        "age_band",
        "count",
        "mean_visits",
        "mean_visits_error_95",
        "mean_cost",
        "mean_cost_error_95",
    ]
]
table.round(2)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
bands = sorted(table["age_band"].unique(), key=lambda b: int(b.split("-")[0].rstrip("+")))
width = 0.38
for i, (label, part) in enumerate(table.groupby("population", sort=False)):
    part = part.set_index("age_band").reindex(bands)
    x = np.arange(len(bands)) + (i - 0.5) * width
    axes[0].bar(x, part["mean_visits"], width, yerr=part["mean_visits_error_95"], capsize=3, label=label)
    axes[1].bar(x, part["mean_cost"], width, yerr=part["mean_cost_error_95"], capsize=3, label=label)
for ax, title in zip(axes, ["visits per person-year", "medical cost per person-year (yuan)"], strict=True):
    ax.set_xticks(np.arange(len(bands)), bands)
    ax.set_title(f"DP mean {title} (95% error bars)")
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The budget after these queries — every spend is recorded with its derived record and ledger entry:

# %%
c.projects.budget()

# %% [markdown]
# ## 4. Register the product
#
# Only DP outputs go into the product, so the disclosure checks accept the noisy counts (`dp_columns`).

# %%
artifact = workdir / "policyholder-health-use.csv"
table.round(2).to_csv(artifact, index=False)
product = c.products.register(
    name={"zh": "投保人群医疗服务利用（差分隐私）", "en": "Policyholders' health-care use (DP)"},
    type="report",
    artifact=artifact,
    derived_from=[cohort.record_id] + [r.record_id for r in results.values()],
    description="DP mean visits and costs by age band: policyholders vs all residents.",
    scenario="Pricing a supplementary health insurance product",
    dp_columns=["count"],
)
print(product.id, product.status)
pd.DataFrame(product.latest["checks"])[["name", "status", "detail"]]
