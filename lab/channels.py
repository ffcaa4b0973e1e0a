"""The three privacy channels, wired explicitly where one place must know all of them.

Each channel owns its typed parameters and their rules (:data:`lab.projects.access.ParamCheck`)
and passes them to :func:`lab.projects.access.authorize` itself; the project's "may I?" check
answers for any channel, so it asks here (:func:`authorize_any`), and the project's disposal runs
every channel's disposer, listed here (:func:`disposers`). Channel modules are imported when
called: the channels import :mod:`lab.projects`.

Besides this module, the lab reaches ``psi_service`` and ``he_compute`` only through their routers
(``lab/api/routes/psi.py``, ``he.py``), their CLI commands (``lab/cli/psi.py``, ``he.py``), the
client's operator side (``lab/client/_psi.py``: PSI's wire and operator modules) and the
migrations' model registry — the ``channel-entries`` contract of ``.importlinter``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from lab.identity import Principal
from lab.projects.access import Access, Ask, Channel, authorize, no_channel_params
from lab.projects.disposal import Disposer
from lab.projects.schemas import CheckParams


def disposers() -> dict[str, Disposer]:
    """The channels' disposers of a project's working data, by name, in the order they run."""
    from he_compute.disposal import dispose_he
    from psi_service.disposal import dispose_psi

    return {"he.contexts": dispose_he, "psi.sessions": dispose_psi}


def ask_of(fields: CheckParams) -> Ask:
    """The generic part of a "may I?" question: a DP spend when it names ε, and its quota units.

    >>> ask_of(CheckParams(epsilon="0.5", units=2))
    Ask(cost=Budget(epsilon=Decimal('0.5'), delta=Decimal('0')), gaussian=False, units=2)
    >>> ask_of(CheckParams(delta="0.1")).cost is None
    True
    """
    cost = None if fields.epsilon is None else Ask.spend(fields.epsilon, fields.delta or 0).cost
    return Ask(cost, False, fields.units or 0)


def authorize_any(
    session: Session,
    principal: Principal,
    project_id: str,
    dataset: str,
    channel: Channel,
    operation: str,
    fields: CheckParams,
) -> Access:
    """:func:`~lab.projects.access.authorize` on ``channel`` with the "may I?" ``fields``, typed
    into the channel's own parameters and checked by its rules."""
    ask = ask_of(fields)
    if channel == "psi":
        from psi_service.access import PsiParams
        from psi_service.access import check_params as psi_check

        psi = PsiParams(fields.mode, fields.column, fields.set_size)
        return authorize(
            session, principal, project_id, dataset, "psi", operation, ask, check=psi_check, params=psi
        )
    if channel == "he":
        from he_compute.access import HeParams
        from he_compute.access import check_params as he_check

        he = HeParams(fields.model, fields.table)
        return authorize(
            session, principal, project_id, dataset, "he", operation, ask, check=he_check, params=he
        )
    return authorize(session, principal, project_id, dataset, "dp", operation, ask, check=no_channel_params)
