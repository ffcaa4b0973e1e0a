"""The embedded demo's project: ``alice`` applies, ``bureau1`` and ``bureau2`` approve, through the lab API.

``lab up`` calls :func:`ensure_demo_project` so that a newcomer who logs in as ``alice`` can spawn a
server (only members of active projects may) and run every example notebook without editing it.
The notebook tests use the same function, so the demo's grant is exactly what the notebooks need.
The real workflow runs: application checked against policy caps, two distinct bureau approvals for
non-open datasets, ledger entries, and the Hub group ``project-<id>`` synchronized by the lab.
"""

from __future__ import annotations

from typing import Any

import lab.client as lc

DEMO_TITLE = "Demo: Chongming small-business credit and health-utilisation study"
#: What the example notebooks use (see notebooks/); within every sample policy's caps.
DEMO_DATASETS: dict[str, dict[str, Any]] = {
    "enterprise_registry": {"psi": {"modes": ["intersection", "cardinality"]}, "dp": {"epsilon": "2"}},
    "social_insurance": {
        "psi": {"modes": ["cohort"]},
        "dp": {"epsilon": "2"},
        "he": {"models": ["credit_score_v1"]},
    },
    "health_visits": {"psi": {"modes": ["cohort"]}, "dp": {"epsilon": "3", "delta": "0.00001"}},
    "population": {
        "psi": {"modes": ["cohort"]},
        "dp": {"epsilon": "3", "delta": "0.00001"},
        "he": {"tables": ["income_by_town"]},
    },
}


def ensure_demo_project(
    api_url: str,
    tokens: dict[str, str],
    *,
    members: list[str] | None = None,
    datasets: dict[str, dict[str, Any]] | None = None,
    title: str = DEMO_TITLE,
    reuse: bool = True,
) -> str:
    """Id of an active demo project of ``members`` (default ``["alice"]``), applying for one if needed.

    ``tokens`` holds Hub tokens of the applicant (first member) and of ``bureau1`` and ``bureau2``.
    """
    members = members or ["alice"]
    applicant = members[0]
    with lc.connect(api_url, tokens[applicant]) as op:
        if reuse:
            mine = op.projects.list(status="active")
            for _, row in mine.iterrows():
                if row["title"] == title and bool(row["serving"]):
                    return str(row["id"])
        project = op.projects.apply(
            title=title,
            purpose="Show how an authorized operator builds products from public data with PSI, DP, HE.",
            scenario="A bank screens loan applicants and scores credit; an insurer studies health-care use.",
            datasets=datasets or DEMO_DATASETS,
            days=90,
            members=members,
            organization="Demo Rural Commercial Bank (示例农商银行)",
            contact=f"{applicant}@example.org",
        )
    for reviewer in ("bureau1", "bureau2"):
        with lc.connect(api_url, tokens[reviewer]) as bureau:
            state = bureau.projects.review(project.id, decision="approve", reason="demo project")
        if state.status == "active":
            break
    if state.status != "active":
        raise RuntimeError(f"the demo project {project.id} is {state.status} after two approvals")
    return str(project.id)
