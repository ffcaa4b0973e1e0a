"""Errors of the products capability (rendered as RFC 9457 problems like every LabError)."""

from __future__ import annotations

from lab.errors import BadRequest, NotFound


class InvalidLineage(BadRequest):
    """A product's lineage names an unknown record or another project's record."""

    code, title = "invalid-lineage", "Lineage refused"


class InvalidArtifact(BadRequest):
    """The artifact is missing, empty, unreadable or does not match its declared digest."""

    code, title = "invalid-artifact", "Artifact refused"


class ProductNotFound(NotFound):
    code, title = "product-not-found", "Product not found"
