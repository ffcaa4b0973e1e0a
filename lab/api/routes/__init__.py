"""API routers, one module per capability; :func:`ROUTERS` lists those that exist, in order."""

from __future__ import annotations

import importlib
import importlib.util

from fastapi import APIRouter

#: Router modules, in inclusion order. A capability's module is included once it exists.
MODULES = (
    "health",
    "catalog",
    "ledger",
    "projects",
    "audit",
    "records",
    "dp",
    "psi",
    "he",
    "products",
    "web",
    "problems",
)


def ROUTERS() -> list[APIRouter]:
    """The routers of every capability module present in this package."""
    found = []
    for name in MODULES:
        qualified = f"{__name__}.{name}"
        if importlib.util.find_spec(qualified) is not None:
            found.append(importlib.import_module(qualified).router)
    return found
