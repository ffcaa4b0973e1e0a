"""Imports every capability's table models so that ``Base.metadata`` is complete."""

from lab.artifacts import models as _artifacts  # noqa: F401
from lab.catalog import models as _catalog  # noqa: F401
from lab.db.base import Base
from lab.ledger import models as _ledger  # noqa: F401
from lab.projects import models as _projects  # noqa: F401
from lab.records import models as _records  # noqa: F401

__all__ = ["Base"]
