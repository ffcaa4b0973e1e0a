"""``lab he``: parameter sets, material listings and bureau publication, from the lab host's console.

Works on the database directly (like ``lab datasets`` and ``lab projects``), as the user named by
``--as``, who is given the bureau role for publication; every other rule holds (validation against
the dataset's policy, a ``artifact.published`` ledger entry, weights never printed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lab.cli.common import handle_errors, runtime
from lab.errors import BadRequest
from lab.identity import Principal

he = typer.Typer(help="Homomorphic computation: parameter sets, models, tables", no_args_is_help=True)
As = Annotated[str, typer.Option("--as", help="who publishes (recorded in the ledger)")]
File = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON file")]
OVERSEER = Principal.from_groups("lab-cli", ["bureau", "auditor"])


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadRequest(f"{path}: cannot read JSON: {exc}") from None


def _echo(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))


@he.command("params")
def params_cmd() -> None:
    """The approved CKKS parameter sets."""
    from he_compute.params import APPROVED

    for p in APPROVED.values():
        bits = ",".join(map(str, p.coeff_mod_bit_sizes))
        typer.echo(f"{p.name:16} N={p.poly_modulus_degree:<6} bits [{bits}]  levels {p.levels}  {p.use}")


@he.command("models")
@handle_errors
def models_cmd(project: Annotated[str | None, typer.Option(help="as seen by this project")] = None) -> None:
    """Models usable for encrypted scoring (the CLI overseer sees weights too)."""
    from he_compute import manage

    with runtime() as rt:
        _echo(manage.listing(rt, OVERSEER, "model", project))


@he.command("tables")
@handle_errors
def tables_cmd(project: Annotated[str | None, typer.Option(help="as seen by this project")] = None) -> None:
    """Statistics tables usable for encrypted lookups (the CLI overseer sees values too)."""
    from he_compute import manage

    with runtime() as rt:
        _echo(manage.listing(rt, OVERSEER, "table", project))


@he.command("publish-model")
@handle_errors
def publish_model(file: File, actor: As) -> None:
    """Publish a model for every project (FILE: name, kind, dataset, features, target, coef, ...)."""
    from he_compute import manage
    from he_compute.schemas import PublishModel

    body = _parse(PublishModel, _json(file))
    with runtime() as rt:
        _echo(manage.publish_model(rt, Principal.from_groups(actor, ["bureau"]), body))


@he.command("publish-table")
@handle_errors
def publish_table(file: File, actor: As) -> None:
    """Publish a statistics table for every project (FILE: name, dataset, dims, statistic, values)."""
    from he_compute import manage
    from he_compute.schemas import PublishTable

    body = _parse(PublishTable, _json(file))
    with runtime() as rt:
        _echo(manage.publish_table(rt, Principal.from_groups(actor, ["bureau"]), body))


def _parse(model: Any, doc: Any) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadRequest(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
