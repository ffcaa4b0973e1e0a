"""Product review queue and product detail with lineage, checks, versions and history.

Reads go through :mod:`lab.products.queries` (who may read what is decided there); the review and
revocation forms call :mod:`lab.products.service` in the page's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from lab.identity import Principal, Role
from lab.products import queries
from lab.products.models import REVIEWABLE, ProductStatus
from lab.web import queries as web_queries


def queue(session: Session, principal: Principal, status: str) -> dict[str, Any]:
    """The versions awaiting review (bureau) and the products the caller may read (filtered)."""
    statuses = [s.value for s in ProductStatus]
    status = status if status in statuses else ""
    return {
        "queue": queries.review_queue(session, principal) if principal.has(Role.bureau) else None,
        "products": queries.list_products(session, principal, status=status or None),
        "status": status,
        "statuses": statuses,
    }


def detail(session: Session, principal: Principal, product_id: str, lang: str) -> dict[str, Any]:
    """Everything the product page shows, and which bureau actions apply."""
    d = queries.detail(session, principal, product_id)
    datasets = {ds["id"] for item in d.lineage for ds in item.datasets if "id" in ds}
    reviewable = d.latest.status in {s.value for s in REVIEWABLE}
    bureau = principal.has(Role.bureau)
    blocked = ""
    if bureau and reviewable and d.latest.submitted_by == principal.name:
        blocked = "product.review_self"
    elif bureau and reviewable and principal.name in d.latest.approvals:
        blocked = "product.review_again"
    return {
        "d": d,
        "labels": web_queries.dataset_labels(session, datasets, lang),
        "review": bureau and reviewable,
        "review_blocked": blocked,
        "flags": [c for c in d.latest.checks if c.status == "fail"],
        "revoke": bureau and d.status == ProductStatus.registered,
        "certificate": d.approved_version is not None,
    }
