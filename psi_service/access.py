"""The PSI channel's own parameters and their rules, plugged into :func:`lab.projects.access.authorize`.

>>> MEMBERSHIP_MODES
('intersection', 'cardinality')
>>> PsiParams("cohort", "uscc", 100)
PsiParams(mode='cohort', column='uscc', set_size=100)
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import BadRequest, NotInGrant
from lab.projects.access import Access
from lab.projects.typed_grants import PsiGrant, expect

#: Modes whose answer tells the operator which (or how many) of their items are in the dataset:
#: open datasets only (non-open ones answer through cohort mode and DP).
MEMBERSHIP_MODES = ("intersection", "cardinality")


@dataclass(frozen=True)
class PsiParams:
    """A PSI run's own parameters: its mode, the dataset column and the client set's size.

    ``None`` where a "may I?" check leaves one out (the rules then refuse what they cannot grant).
    """

    mode: str | None = None
    column: str | None = None
    set_size: int | None = None


def check_params(access: Access, params: PsiParams) -> None:
    """Mode, column and client-set size of a PSI run against the policy and the project's grant."""
    grant, policy, dataset = expect(access.grant, PsiGrant), access.policy, access.dataset.dataset
    mode, column = params.mode, params.column
    psi = policy.channels.psi
    if psi is None or column is None or column not in psi.columns:
        raise NotInGrant(f"column {column!r} of {dataset} is not open to PSI")
    if mode is None or mode not in grant.modes or mode not in [m.value for m in psi.columns[column].modes]:
        raise NotInGrant(f"PSI mode {mode!r} on {dataset}.{column} is not granted")
    if mode in MEMBERSHIP_MODES and not policy.is_open:  # also for policies stored before the rule
        raise NotInGrant(
            f"PSI mode {mode!r} reveals membership and is closed on non-open {dataset}; "
            "use cohort mode and DP"
        )
    if not grant.allows(mode, column):
        raise NotInGrant(f"PSI on column {column!r} is not granted")
    size = params.set_size
    if size is not None:
        if size > psi.max_client_set:
            raise BadRequest(f"client set of {size} items exceeds the maximum {psi.max_client_set}")
        if size < psi.min_client_set:  # every mode, cohort too (refused before any work)
            raise BadRequest(
                f"client set of {size} items is below the minimum {psi.min_client_set} "
                "(single-item probing is refused)",
                min_client_set=psi.min_client_set,
            )
