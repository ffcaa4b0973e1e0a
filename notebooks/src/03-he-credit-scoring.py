# %% [markdown]
# # Encrypted credit scoring with a DP-trained model
#
# **Scenario.** The bank from notebook 01 now prices loans for the applicants that passed screening. Two
# public signals help, and both come from non-open data:
#
# * **What wage level is normal for a firm of this size?** A linear model trained *with differential
#   privacy* on the social-insurance records (`avg_wage_base ~ headcount`). The model stays on the lab's
#   server; the bank sends its applicants' headcounts **encrypted** (CKKS, TenSEAL) and gets encrypted
#   predictions back that only it can decrypt. The lab never sees a headcount or a prediction.
# * **What income is typical for the owner's town and education?** A DP statistics table (mean monthly
#   income by town × education) released from the population register, looked up under encryption too.
#
# The bank then combines these with its own data into a transparent scorecard, and registers the
# scorecard report as a product.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import tqdm

import lab.client as lc

plt.rcParams["font.sans-serif"] = ["Noto Sans CJK SC", "Noto Serif CJK SC", "DejaVu Sans"]
c = lc.connect()
project = os.environ.get("LAB_PROJECT") or os.environ["LAB_PROJECTS"].split(",")[0]
c.use(project)
c.projects.budget()

# %% [markdown]
# ## 1. Train the wage model with differential privacy
#
# Training spends ε from the project's `social_insurance` budget; the model's coefficients are DP, so the
# lab may also show them to you. We name it `credit_score_v1`, the model name the dataset's policy clears
# for encrypted scoring.

# %%
model = c.dp.train(
    "social_insurance",
    model="linear",
    features=["headcount"],
    target="avg_wage_base",
    epsilon=1.0,
    bounds={"headcount": [0, 500]},
    name="credit_score_v1",
)
print(model)
print("coefficients:", model.coef, "intercept:", model.intercept)

# %% [markdown]
# ## 2. Release a DP income table for encrypted lookups

# %%
income = c.dp.release_table(
    "population", "mean(monthly_income)", dims=["town", "education"], epsilon=0.5, name="income_by_town"
)
print(income)
c.he.tables()

# %% [markdown]
# ## 3. The bank's applicants (its own data, simulated here)

# %%
schema = c.catalog.schema("population").set_index("name")
towns, schooling = schema.loc["town", "domain"], schema.loc["education", "domain"]
rng = np.random.default_rng(42)
n = 400
applicants = pd.DataFrame(
    {
        "application": [f"LA-2026-{i:04d}" for i in range(n)],
        "headcount": rng.integers(2, 300, n),
        "declared_wage": np.round(rng.lognormal(np.log(7000), 0.45, n), -1),
        "town": rng.choice(towns, n),
        "education": rng.choice(schooling, n),
        "amount_10k": rng.integers(5, 300, n),
    }
)
applicants.head()

# %% [markdown]
# ## 4. Encrypted scoring and lookup
#
# `c.he.context()` makes a CKKS key pair *here*; only the public context (no secret key) is registered
# with the project. Features are packed column-wise (thousands of records per ciphertext).

# %%
ctx = c.he.context("ckks-8192")
print(ctx)
steps = tqdm(total=2, desc="encrypted calls")
expected_wage = c.he.score(applicants, model="credit_score_v1", progress=False)
steps.update()
owner_income = c.he.lookup(applicants[["town", "education"]], table="income_by_town", progress=False)
steps.update()
steps.close()
print(
    "score record:",
    expected_wage.attrs.get("record_id"),
    "| lookup record:",
    owner_income.attrs.get("record_id"),
)

# %%
# the decrypted predictions agree with the DP model applied in the clear (CKKS error ~1e-3)
clear = model.intercept + np.clip(applicants[["headcount"]].to_numpy(float), 0, 500) @ model.coef
print("max |encrypted - clear| =", float(np.max(np.abs(expected_wage.to_numpy() - clear))))

# %% [markdown]
# ## 5. A transparent scorecard
#
# * wage consistency: declared wage vs the DP model's expectation for the firm's size;
# * owner income context: the owner's town/education DP mean income.

# %%
card = applicants.assign(expected_wage=expected_wage.round(0), owner_income=owner_income.round(0))
ratio = (card["declared_wage"] / card["expected_wage"].clip(lower=1)).clip(0, 3)
card["wage_points"] = (100 - 60 * (ratio - 1).abs()).clip(0, 100)
card["income_points"] = (card["owner_income"].fillna(card["owner_income"].median()) / 100).clip(0, 100)
card["score"] = (500 + 2 * card["wage_points"] + card["income_points"]).round(0)
card["grade"] = pd.qcut(card["score"].rank(method="first"), 4, labels=["D", "C", "B", "A"])
card[["application", "headcount", "declared_wage", "expected_wage", "owner_income", "score", "grade"]].head(
    10
)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
axes[0].scatter(card["headcount"], card["declared_wage"], s=8, alpha=0.5, label="declared (bank)")
order = np.argsort(card["headcount"].to_numpy())
axes[0].plot(
    card["headcount"].to_numpy()[order],
    card["expected_wage"].to_numpy()[order],
    color="tab:red",
    label="DP model, scored under encryption",
)
axes[0].set_xlabel("headcount")
axes[0].set_ylabel("monthly wage base (yuan)")
axes[0].legend()
card["grade"].value_counts().reindex(["A", "B", "C", "D"]).plot.bar(ax=axes[1], rot=0, color="tab:blue")
axes[1].set_title("Scorecard grades")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Register the scorecard report
#
# The report holds grade counts and mean amounts per grade (the bank's own data and DP-derived inputs);
# its lineage is the DP training and table release and the two HE calls.

# %%
workdir = Path(tempfile.mkdtemp())
report = (
    card.groupby("grade", observed=False)
    .agg(applicants=("application", "count"), mean_score=("score", "mean"), amount_10k=("amount_10k", "sum"))
    .reset_index()
)
report.to_csv(workdir / "scorecard-report.csv", index=False)
lineage = [
    model.record_id,
    income.record_id,
    expected_wage.attrs["record_id"],
    owner_income.attrs["record_id"],
]
product = c.products.register(
    name={"zh": "小微企业贷款加密评分卡报告", "en": "Encrypted small-business credit scorecard report"},
    type="report",
    artifact=workdir / "scorecard-report.csv",
    derived_from=lineage,
    description="Scorecard from a DP wage model and a DP income table, evaluated under homomorphic encryption.",
    scenario="Loan pricing",
)
print(product.id, product.status)
pd.DataFrame(product.latest["checks"])[["name", "status", "detail"]]
