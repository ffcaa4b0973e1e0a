"""HE channel management: contexts (register, list, delete), material listings, bureau publication.

Who may do what:

* register a context — an operator member of an active project (it is theirs: stored per
  project *and* operator, usable only by them);
* list contexts — their owner; the bureau and auditors see all of a project's;
* delete a context — its owner;
* list models / tables of a project — its members, the bureau, auditors (metadata only);
* publish a model or table for all projects — the bureau.
"""

from __future__ import annotations

from typing import Any

from he_compute import contexts, material
from he_compute.models import HeContextRow
from he_compute.schemas import PublishModel, PublishTable
from he_compute.worker import WorkerPool
from lab.errors import Forbidden
from lab.identity import Principal
from lab.projects.access import OVERSEERS, check_serving, operated_project, readable_project
from lab.runtime import Runtime


def _member(session: Any, principal: Principal, project_id: str, *, serving: bool) -> None:
    project = operated_project(session, principal, project_id)
    if serving:
        check_serving(project)


def _reader(session: Any, principal: Principal, project_id: str | None) -> bool:
    """May ``principal`` read the project's HE metadata? Returns whether they see everything."""
    if principal.has(*OVERSEERS):
        if project_id:
            readable_project(session, principal, project_id)
        return True
    if project_id is None:
        raise Forbidden(
            "all HE material is listed to the bureau and auditors; operators list their project's "
            "(GET /api/v1/projects/{project}/he/models or /tables)"
        )
    readable_project(session, principal, project_id)
    return False


def register(
    runtime: Runtime, pool: WorkerPool, principal: Principal, project_id: str, param_set: str, data: bytes
) -> HeContextRow:
    """Check a public context in a worker and store it for ``principal`` in ``project_id``."""
    with runtime.transaction() as s:
        _member(s, principal, project_id, serving=True)
    facts = contexts.check_context(pool, param_set, data)  # outside any transaction: it may take a while
    with runtime.transaction() as s:
        _member(s, principal, project_id, serving=True)
        return contexts.register_context(
            s,
            runtime.store,
            pool,
            project_id=project_id,
            owner=principal.name,
            param_set=param_set,
            data=data,
            facts=facts,
        )


def list_contexts(runtime: Runtime, principal: Principal, project_id: str) -> list[HeContextRow]:
    with runtime.transaction() as s:
        everything = _reader(s, principal, project_id)
        return contexts.list_contexts(s, project_id, None if everything else principal.name)


def delete_context(runtime: Runtime, principal: Principal, project_id: str, context_id: str) -> None:
    with runtime.transaction() as s:
        row = contexts.get_context(s, project_id, principal.name, context_id)
        contexts.delete_context(s, runtime.store, row)


def listing(runtime: Runtime, principal: Principal, kind: material.Kind, project_id: str | None) -> list[Any]:
    with runtime.transaction() as s:
        _reader(s, principal, project_id)
        return material.listing(s, principal, kind, project_id)


def publish_model(runtime: Runtime, principal: Principal, body: PublishModel) -> dict[str, Any]:
    """Publish (``release="published"``, content in the body) or promote a DP model (``"dp"``)."""
    with runtime.transaction() as s:
        if body.release == "dp":
            row = material.promote(s, runtime.ledger(s), principal, "model", body.name, str(body.source))
        else:
            assert body.kind and body.dataset and body.features and body.target  # validated by the schema
            row = material.publish_model(
                s,
                runtime.ledger(s),
                principal,
                name=body.name,
                kind=body.kind,
                dataset=body.dataset,
                features=body.features,
                target=body.target,
                params=body.params(),
            )
        return material.model_public(row, reveal=True)


def publish_table(runtime: Runtime, principal: Principal, body: PublishTable) -> dict[str, Any]:
    """Publish (``release="published"``, content in the body) or promote a DP table (``"dp"``)."""
    with runtime.transaction() as s:
        if body.release == "dp":
            row = material.promote(s, runtime.ledger(s), principal, "table", body.name, str(body.source))
        else:
            assert body.dataset and body.dims and body.statistic and body.values  # validated by the schema
            row = material.publish_table(
                s,
                runtime.ledger(s),
                principal,
                name=body.name,
                dataset=body.dataset,
                dims=body.dims,
                statistic=body.statistic,
                values=body.values,
            )
        return material.table_public(row, reveal=True)
