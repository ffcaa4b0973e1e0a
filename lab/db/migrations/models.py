"""The migrations' model registry: every capability's tables, so ``Base.metadata`` is complete.

Only Alembic's env.py and the models-equal-migrations test import it; no capability imports it back.
"""

from he_compute import models as _he  # noqa: F401
from lab.artifacts import models as _artifacts  # noqa: F401
from lab.audit import models as _audit  # noqa: F401
from lab.budgets import models as _budgets  # noqa: F401
from lab.catalog import models as _catalog  # noqa: F401
from lab.db.base import Base
from lab.dp import models as _dp  # noqa: F401
from lab.ledger import models as _ledger  # noqa: F401
from lab.products import models as _products  # noqa: F401
from lab.projects import models as _projects  # noqa: F401
from lab.records import models as _records  # noqa: F401
from psi_service import models as _psi  # noqa: F401

__all__ = ["Base"]
