"""``lab sample``: generate the deterministic synthetic Chongming sample catalog.

Wired into the main CLI as ``app.add_typer(sample, name="sample")``. The command only parses
options, calls :func:`lab.sample.generate` and prints rows per dataset; the generator holds
every rule (see :mod:`lab.sample.generate`).
"""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from lab.errors import LabError
from lab.sample import DEFAULT_SEED, generate

sample = typer.Typer(
    help="Synthetic sample catalog: six policy-conformant datasets, deterministic for a scale and seed.",
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


@sample.callback()
def _group() -> None:
    """Synthetic sample catalog of Chongming District (no real person or enterprise)."""


@sample.command("generate")
def generate_command(
    scale: Annotated[
        int, typer.Option(min=1, help="Residents in `population`; the other datasets are proportional.")
    ],
    out: Annotated[Path, typer.Option(file_okay=False, help="Output directory (created if missing).")],
    seed: Annotated[int, typer.Option(help="Seed; the same scale and seed give byte-identical files.")] = (
        DEFAULT_SEED
    ),
    fmt: Annotated[OutputFormat, typer.Option("--format", help="File format.")] = OutputFormat.parquet,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    policies: Annotated[
        Path | None,
        typer.Option(exists=True, file_okay=False, help="Policy directory (default: the sample policies)."),
    ] = None,
) -> None:
    """Write one file per dataset to OUT, plus the policies in OUT/policies."""
    started = time.perf_counter()
    try:
        rows = generate(scale, out, seed=seed, fmt=fmt.value, progress=progress, policy_dir=policies)
    except (ValueError, LabError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    elapsed = time.perf_counter() - started
    width = max(len(name) for name in rows)
    typer.echo(f"{'dataset':<{width}}  {'rows':>12}  {'bytes':>13}")
    for name, count in rows.items():
        size = (out / f"{name}.{fmt.value}").stat().st_size
        typer.echo(f"{name:<{width}}  {count:>12,}  {size:>13,}")
    total = sum(rows.values())
    typer.echo(
        f"{'total':<{width}}  {total:>12,}  in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f} rows/s)"
    )
    typer.echo(f"written to {out}")
