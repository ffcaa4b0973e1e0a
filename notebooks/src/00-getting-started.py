# %% [markdown]
# # Getting started in the Public Data Innovation Lab
#
# This notebook runs in your own JupyterLab server, spawned by the lab's JupyterHub because you are a
# member of an approved project. The server holds **no** credentials to the lab's storage or database:
# the lab API is your only door to public data, and every call is checked against your project's grant,
# counted against its budget and written to the ledger.
#
# Run the cells from top to bottom (Shift-Enter). Nothing needs editing.

# %%
import os

import matplotlib.pyplot as plt
import pandas as pd

import lab.client as lc

c = lc.connect()  # reads LAB_API_URL and JUPYTERHUB_API_TOKEN, which the Hub set for this server
me = c.whoami()
me

# %% [markdown]
# ## Your project
#
# The Hub tells the server which projects you belong to (`LAB_PROJECTS`). Every channel call runs under
# one project; `c.use(...)` makes it the default.

# %%
projects = [p for p in os.environ.get("LAB_PROJECTS", "").split(",") if p]
project = os.environ.get("LAB_PROJECT") or projects[0]
c.use(project)
print("projects:", projects, "-> using", project)

# %%
project_info = c.projects.get()
print(project_info.title, "|", project_info.status, "| ends", project_info.ends_at)
print("members:", ", ".join(project_info.members))

# %% [markdown]
# ## The catalog
#
# Every dataset has a catalog entry (articles 6–8): classification, share and open attributes, responsible
# unit, update cycle and the channels its policy allows. Non-open datasets (personal information, trade
# secrets) are reachable **only** through the privacy channels.

# %%
catalog = c.catalog.list()
catalog[["id", "title_en", "open", "classification", "responsible_unit", "row_count", "channels"]]

# %%
fig, ax = plt.subplots(figsize=(8, 3.2))
colors = {"unconditional": "tab:green", "conditional": "tab:orange", "non-open": "tab:red"}
ax.barh(catalog["id"], catalog["row_count"], color=[colors.get(o, "grey") for o in catalog["open"]])
ax.set_xlabel("rows (current version)")
ax.set_title("Sample catalog — green: open, orange: conditional, red: non-open")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Schema and dummy rows
#
# You never see real records of a non-open dataset. To write and test your code, ask for **dummy rows**:
# generated from the schema alone (types, domains, bounds), they look like the data and contain none of it.

# %%
c.catalog.schema("health_visits")

# %%
dummy = c.catalog.dummy("health_visits", n=10, seed=7)
dummy

# %%
c.catalog.policy("health_visits")

# %% [markdown]
# ## Your grant and your privacy budget
#
# The bureau approved your project for specific datasets, channels and limits (article 18: minimum
# necessary, purpose-bound). Differential-privacy queries spend the project's ε budget per dataset; when a
# budget is spent, further queries on that dataset are refused.
#
# Each non-open dataset also has one privacy-loss account shared by every project (a lifetime budget and a
# yearly allowance set by its steward): every release is charged to both. `epsilon_total` is your
# project's limit; `dataset_epsilon_lifetime` and `dataset_epsilon_allowance` are the dataset's (for life and
# for this year), `dataset_epsilon_remaining` is what the dataset has left, `dataset_composition` how it adds
# losses up (`basic`: ε adds; `zcdp`: the account adds ε²/2 and converts, so ε left does not add), and
# `binding` says which limit will refuse you first.

# %%
pd.DataFrame(
    [{"dataset": d, "channels": ", ".join(sorted(g)), "limits": g} for d, g in project_info.grants.items()]
)

# %%
budget = c.projects.budget()
limits = ["epsilon_total", "epsilon_remaining", "dataset_epsilon_lifetime", "dataset_epsilon_allowance"]
budget[["dataset", *limits, "dataset_epsilon_remaining", "dataset_composition", "binding"]]

# %%
if len(budget):
    b = budget.assign(
        spent=budget["epsilon_spent"].astype(float), remaining=budget["epsilon_remaining"].astype(float)
    )
    ax = b.plot.barh(
        x="dataset", y=["spent", "remaining"], stacked=True, figsize=(7, 2.5), color=["tab:red", "tab:green"]
    )
    ax.set_xlabel("ε")
    ax.set_title("Privacy budget per dataset")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# Before spending anything you can ask whether a call would be allowed, and what a DP query would cost
# and how accurate it would be:

# %%
dp_datasets = [d for d, g in project_info.grants.items() if "dp" in g]
if dp_datasets:
    preview = c.dp.preview(dp_datasets[0], select=["count"], epsilon=0.1)
    print(dp_datasets[0], "| allowed:", preview.allowed, "| cost:", preview.cost, "| remaining:", preview.remaining)
    display(preview.frame)  # noqa: F821 - IPython's display

# %% [markdown]
# ## The ledger
#
# Every catalog change, approval, channel result and product is a leaf of an append-only Merkle log
# (article 9). Anyone with read access can check the signed tree head.

# %%
c.ledger.head()

# %% [markdown]
# ## Next steps
#
# * `01-psi-bank-loan-applicants.ipynb` — a bank matches its loan applicants to the enterprise registry
#   with private set intersection.
# * `02-dp-health-visits-cohort.ipynb` — DP statistics of health visits for a PSI cohort.
# * `03-he-credit-scoring.ipynb` — encrypted credit scoring with a DP-trained model.
