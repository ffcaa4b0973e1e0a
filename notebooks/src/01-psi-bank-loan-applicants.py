# %% [markdown]
# # A bank screens its loan applicants with private set intersection
#
# **Scenario.** A rural commercial bank has received small-business loan applications. Before it opens
# credit files it wants to know which applicants are enterprises registered in Chongming (the district's
# *enterprise registry*, an open dataset), and how many of them pay social insurance for their staff
# (the *social insurance* dataset: non-open, so the bank may learn only a **DP-noised count**).
#
# The applicant list is the bank's trade secret. With PSI (ECDH, OpenMined's `openmined-psi`) the bank's
# identifiers leave this notebook only blinded under a key that never leaves it; the lab learns at most the
# size of the list, and the bank learns exactly what the dataset's policy allows:
#
# | dataset | column | mode | what the bank learns |
# |---|---|---|---|
# | enterprise_registry | uscc | `intersection` | which of *its own* applicants are registered |
# | social_insurance | uscc | `cohort` | a differentially private count of its applicants there |
#
# The result ends as a registered product: a screening summary for the bank's credit committee.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import lab.client as lc
from lab.identifiers import make_uscc

c = lc.connect()
project = os.environ.get("LAB_PROJECT") or os.environ["LAB_PROJECTS"].split(",")[0]
c.use(project)
c.catalog.policy("enterprise_registry")["psi"], c.catalog.policy("social_insurance")["psi"]

# %% [markdown]
# ## The bank's applicants
#
# In real life this is the bank's own application file. This demo **simulates** one: two thirds of the
# applicants are Chongming enterprises (drawn with the lab's public sample generator, which is how the
# demo catalog was made), the rest are firms registered elsewhere in China, and a few USCCs were mistyped
# by the branch staff.

# %%
registry_rows = int(c.catalog.get("enterprise_registry")["row_count"])
scale = registry_rows * 10  # the sample catalog has one enterprise per ten residents

from lab.sample.generate import generate  # noqa: E402

workdir = Path(tempfile.mkdtemp())
generate(scale, workdir, datasets=["enterprise_registry"])
local_firms = pd.read_parquet(workdir / "enterprise_registry.parquet", columns=["uscc", "industry"])

rng = np.random.default_rng(2026)
n_local, n_other, n_typos = 160, 70, 6
local = local_firms.sample(n_local, random_state=7)
other_uscc = [
    make_uscc(
        "9", "1", rng.choice(["310115", "320506", "330106", "110105"]), f"{rng.integers(10**6, 10**7)}A"
    )
    for _ in range(n_other)
]
typos = [u[:-1] for u in local_firms["uscc"].sample(n_typos, random_state=3)]  # a dropped character
applicants = pd.DataFrame(
    {
        "application": [f"LA-2026-{i:04d}" for i in range(n_local + n_other + n_typos)],
        "uscc": list(local["uscc"]) + other_uscc + typos,
        "product": rng.choice(
            ["working capital", "equipment", "agri-season", "green upgrade"], n_local + n_other + n_typos
        ),
        "amount_10k": rng.integers(5, 300, n_local + n_other + n_typos),
    }
).sample(frac=1, random_state=1, ignore_index=True)
applicants.head()

# %% [markdown]
# The client normalizes identifiers exactly as the lab does (GB 32100-2015 check characters) and keeps
# invalid ones here — they are reported, never sent:

# %%
checked = c.psi.normalize(applicants["uscc"], dataset="enterprise_registry", column="uscc")
print(f"{checked.distinct} valid distinct USCCs; {checked.invalid.count} invalid (kept here):")
checked.invalid.examples

# %% [markdown]
# ## Which applicants are registered in Chongming? (`intersection`)

# %%
registered = c.psi.intersect(
    applicants["uscc"], dataset="enterprise_registry", column="uscc", mode="intersection", progress=True
)
print(
    f"{registered.size} of {registered.client_size} applicants are in the registry "
    f"(derived record {registered.record_id})"
)
applicants["registered"] = applicants.index.isin(registered.matches.index)
applicants.groupby("registered").size()

# %% [markdown]
# ## How many of them pay social insurance? (`cohort`)
#
# Social-insurance data is non-open. An exact count (`cardinality`) is not offered there: a modified client
# can turn a count into membership. Instead the lab keeps the matching enterprises as a server-side
# **cohort** — the bank's notebook proves that its answer is honest (a DLEQ proof, checked by the lab) — and
# releases only the cohort's size with differential-privacy noise, charged to the project's ε budget.

# %%
insured = c.psi.intersect(
    applicants.loc[applicants["registered"], "uscc"],
    dataset="social_insurance",
    column="uscc",
    mode="cohort",
)
print(
    f"about {insured.noisy_size} (± {insured.error_bound_95} at 95 %) of the {registered.size} registered "
    f"applicants appear in social insurance records (ε = {insured.epsilon})"
)

# %% [markdown]
# ## A screening summary for the credit committee
#
# The bank joins the PSI answer with **its own** columns (loan product, amount); nothing here is a record of
# the public datasets.

# %%
summary = (
    applicants.groupby("product")
    .agg(
        applications=("application", "count"),
        registered=("registered", "sum"),
        amount_10k=("amount_10k", "sum"),
    )
    .reset_index()
)
summary["registered_share"] = (summary["registered"] / summary["applications"]).round(3)
summary

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
summary.plot.bar(
    x="product", y=["applications", "registered"], ax=axes[0], rot=0, color=["tab:grey", "tab:green"]
)
axes[0].set_title("Applicants registered in Chongming, by loan product")
axes[1].bar(
    ["applicants", "registered (PSI)", "insured (PSI cohort, DP)"],
    [registered.client_size, registered.size, insured.noisy_size],
    color=["tab:grey", "tab:green", "tab:blue"],
)
axes[1].set_title("Screening funnel")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Register the product
#
# The summary is registered with its lineage: the two PSI derived records. The lab runs automatic checks
# (lineage belongs to this project, artifact digest, disclosure checks); then the bureau reviews it.

# %%
artifact = workdir / "loan-screening-summary.csv"
funnel = pd.DataFrame(
    [
        {
            "product": "ALL",
            "applications": registered.client_size,
            "registered": registered.size,
            "insured_dp": insured.noisy_size,
        }
    ]
)
pd.concat([summary, funnel], ignore_index=True).to_csv(artifact, index=False)
product = c.products.register(
    name={"zh": "小微企业贷款申请人筛查汇总", "en": "Small-business loan applicant screening summary"},
    type="report",
    artifact=artifact,
    derived_from=[registered.record_id, insured.record_id],
    description="Share of loan applicants registered in Chongming and paying social insurance (PSI).",
    scenario="Credit committee pre-screening",
)
print(product.id, product.status)
pd.DataFrame(product.latest["checks"])[["name", "status", "detail"]]
