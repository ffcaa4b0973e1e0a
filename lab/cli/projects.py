"""``lab projects``: the project lifecycle from the lab host's console.

The CLI works on the database directly (like ``lab datasets``), as the user named by ``--as``; that
user is given the role the action needs (operator to apply, bureau to review, suspend, resume, end),
and every other rule holds: nobody reviews their own project, grants only shrink, every transition is
a ledger entry. Reads (``list``, ``show``, ``budget``) see every project.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from lab.cli.common import handle_errors, runtime
from lab.identity import Principal
from lab.projects.errors import InvalidProject
from lab.projects.schemas import ApplicationIn, ResubmitIn, ReviewIn, parse

projects = typer.Typer(help="Projects: apply, review, supervise, expire and dispose", no_args_is_help=True)
As = Annotated[str, typer.Option("--as", help="who acts (recorded in the ledger)")]
Reason = Annotated[str, typer.Option(help="why (recorded in the ledger)")]
OVERSEER = Principal.from_groups("lab-cli", ["bureau", "auditor"])


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidProject(f"{path}: cannot read YAML: {exc}") from None


def _echo(model: Any) -> None:
    typer.echo(json.dumps(model.model_dump(mode="json"), indent=2, ensure_ascii=False))


def _status_line(p: Any) -> None:
    typer.echo(f"{p.id}  {p.status}  {p.title}  (ends {p.ends_at.date() if p.ends_at else '-'})")


@projects.command("list")
@handle_errors
def list_(status: Annotated[str | None, typer.Option(help="only projects in this status")] = None) -> None:
    """List projects, newest first."""
    from lab.projects.workflow import ProjectWorkflow

    with runtime() as rt:
        for p in ProjectWorkflow(rt).list(OVERSEER, status, 1000):
            end = p.ends_at.date().isoformat() if p.ends_at else "-"
            typer.echo(
                f"{p.id:18} {p.status:18} {p.applicant:12} {end:10}  {p.title}  [{', '.join(p.datasets)}]"
            )


@projects.command("show")
@handle_errors
def show(project_id: str) -> None:
    """Print a project (members, grant, budgets, events) as JSON."""
    from lab.projects.workflow import ProjectWorkflow

    with runtime() as rt:
        _echo(ProjectWorkflow(rt).get(OVERSEER, project_id))


@projects.command("budget")
@handle_errors
def budget(project_id: str) -> None:
    """Print a project's budgets (spent and remaining per dataset) and quota counters."""
    from lab.projects.workflow import ProjectWorkflow

    with runtime() as rt:
        report = ProjectWorkflow(rt).budget(OVERSEER, project_id)
    for b in report.budgets:
        typer.echo(
            f"{b.dataset:24} ε {b.epsilon_spent}/{b.epsilon_total} (left {b.epsilon_remaining})  "
            f"δ {b.delta_spent}/{b.delta_total}  {b.spends} spends"
            + (
                f"  dataset account ({b.dataset_composition}): ε {b.dataset_epsilon_lifetime} for life, "
                f"{b.dataset_epsilon_allowance} "
                f"in {b.dataset_period}, left {b.dataset_epsilon_remaining}; {b.binding} binds"
                if b.dataset_epsilon_remaining is not None
                else ""
            )
        )
    for u in report.usage:
        typer.echo(f"{u.dataset:24} {u.channel} {u.period}: {u.used}")


@projects.command("apply")
@handle_errors
def apply(
    file: Annotated[Path, typer.Option("--file", exists=True, dir_okay=False, help="application YAML")],
    actor: As,
) -> None:
    """File an application from a YAML file (the fields of ``POST /api/v1/projects``)."""
    from lab.projects.workflow import ProjectWorkflow

    app = parse(ApplicationIn, _yaml(file), str(file))
    with runtime() as rt:
        _status_line(ProjectWorkflow(rt).apply(Principal.from_groups(actor, ["operator"]), app))


@projects.command("review")
@handle_errors
def review(
    project_id: str,
    actor: As,
    decision: Annotated[str, typer.Option(help="approve | reject | changes")],
    reason: Reason = "",
    grants: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="YAML of reductions")
    ] = None,
    days: Annotated[int | None, typer.Option(help="a shorter term than requested")] = None,
) -> None:
    """Review an application as a bureau reviewer."""
    from lab.projects.workflow import ProjectWorkflow

    body = {"decision": decision, "reason": reason, "grants": _yaml(grants) if grants else None, "days": days}
    rv = parse(ReviewIn, body, "review")
    with runtime() as rt:
        _status_line(ProjectWorkflow(rt).review(Principal.from_groups(actor, ["bureau"]), project_id, rv))


@projects.command("resubmit")
@handle_errors
def resubmit(
    project_id: str,
    actor: As,
    file: Annotated[
        Path | None, typer.Option("--file", exists=True, dir_okay=False, help="changes YAML")
    ] = None,
    note: Annotated[str, typer.Option(help="what changed")] = "",
) -> None:
    """Resubmit an application after changes were requested."""
    from lab.projects.workflow import ProjectWorkflow

    data = dict(_yaml(file) or {}) if file else {}
    data.setdefault("note", note)
    changes = parse(ResubmitIn, data, str(file or "changes"))
    with runtime() as rt:
        _status_line(
            ProjectWorkflow(rt).resubmit(Principal.from_groups(actor, ["operator"]), project_id, changes)
        )


def _supervise(action: str, project_id: str, actor: str, reason: str) -> None:
    from lab.projects.workflow import ProjectWorkflow

    with runtime() as rt:
        wf = ProjectWorkflow(rt)
        fn = {"suspend": wf.suspend, "resume": wf.resume, "end": wf.end}[action]
        _status_line(fn(Principal.from_groups(actor, ["bureau"]), project_id, reason))


@projects.command("suspend")
@handle_errors
def suspend(project_id: str, actor: As, reason: Reason = "") -> None:
    """Suspend an active project (serves nothing, keeps its data)."""
    _supervise("suspend", project_id, actor, reason)


@projects.command("resume")
@handle_errors
def resume(project_id: str, actor: As, reason: Reason = "") -> None:
    """Resume a suspended project."""
    _supervise("resume", project_id, actor, reason)


@projects.command("end")
@handle_errors
def end(project_id: str, actor: As, reason: Reason = "") -> None:
    """End a project: revoke access and dispose of its working data."""
    _supervise("end", project_id, actor, reason)


@projects.command("add-member")
@handle_errors
def add_member(project_id: str, users: list[str], actor: As, reason: Reason = "") -> None:
    """Add members (as a bureau reviewer)."""
    from lab.projects.workflow import ProjectWorkflow

    with runtime() as rt:
        p = ProjectWorkflow(rt).add_members(
            Principal.from_groups(actor, ["bureau"]), project_id, users, reason
        )
    typer.echo(f"{p.id} members: {', '.join(m.username for m in p.members if m.removed_at is None)}")


@projects.command("remove-member")
@handle_errors
def remove_member(project_id: str, users: list[str], actor: As, reason: Reason = "") -> None:
    """Remove members (as a bureau reviewer); their Hub access ends at once."""
    from lab.projects.workflow import ProjectWorkflow

    with runtime() as rt:
        p = ProjectWorkflow(rt).remove_members(
            Principal.from_groups(actor, ["bureau"]), project_id, users, reason
        )
    typer.echo(f"{p.id} members: {', '.join(m.username for m in p.members if m.removed_at is None)}")


@projects.command("sweep")
@handle_errors
def sweep() -> None:
    """Expire projects past their end date, dispose of ended/expired ones, re-sync dirty Hub groups."""
    from lab.projects.sweep import sweep as run

    with runtime() as rt:
        report = run(rt)
    typer.echo(f"expired: {', '.join(report.expired) or '-'}")
    for d in report.disposed:
        counts = ", ".join(f"{k} {v}" for k, v in d.counts().items())
        typer.echo(f"disposed {d.project}: {counts} (ledger entry {d.ledger_index})")
    typer.echo(f"hub groups synced: {len(report.synced)}")
    for e in report.errors:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    if report.errors:
        raise typer.Exit(1)


@projects.command("sync-hub")
@handle_errors
def sync_hub(
    dirty_only: Annotated[bool, typer.Option(help="only projects whose Hub group lags behind")] = False,
) -> None:
    """Make every project's Hub group match the database (full reconciliation by default)."""
    from lab.projects import hubsync

    with runtime() as rt:
        done, errors = hubsync.sync_pending(rt) if dirty_only else hubsync.sync_all(rt)
    for r in done:
        extra = (
            f" (removed {', '.join(r.removed)}; stopped {', '.join(r.stopped) or '-'})" if r.removed else ""
        )
        typer.echo(f"{r.group}: {', '.join(r.members) or '(empty)'}{extra}")
    for e in errors:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    if errors:
        raise typer.Exit(1)
