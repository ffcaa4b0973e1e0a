"""``lab psi``: key rotation, setup warm-up and the state of the PSI channel."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from lab.cli.common import handle_errors, runtime

psi = typer.Typer(help="Private set intersection: key epochs and setups", no_args_is_help=True)


@psi.command("rotate-key")
@handle_errors
def rotate_key(
    actor: Annotated[str, typer.Option(help="who rotates (recorded in the ledger)")] = "bureau-cli",
    purge: Annotated[
        bool, typer.Option(help="also destroy epochs retired longer than a session lifetime")
    ] = True,
) -> None:
    """Retire the active PSI key epoch and start a new one (setups are rebuilt on demand)."""
    from psi_service.keys import KeyRing

    with runtime() as rt:
        ring = KeyRing(rt)
        retired, new = ring.rotate(actor)
        typer.echo(f"PSI key epoch {new} is active" + (f"; epoch {retired} retired" if retired else ""))
        if purge:
            grace = dt.timedelta(seconds=rt.settings.psi.session_ttl_seconds)
            for epoch in ring.purge(actor, grace):
                typer.echo(f"PSI key epoch {epoch} destroyed, its cached setups deleted")


@psi.command("epochs")
@handle_errors
def epochs() -> None:
    """List PSI key epochs (fingerprints only; keys stay sealed)."""
    from psi_service.keys import KeyRing

    with runtime() as rt:
        for row in KeyRing(rt).epochs():
            created = f"{row.created_at:%Y-%m-%d %H:%M}"
            typer.echo(f"epoch {row.epoch:<4} {row.status:10} key_id {row.key_id}  created {created}")


@psi.command("warm")
@handle_errors
def warm(
    dataset: Annotated[str, typer.Argument(help="dataset id")],
    column: Annotated[str, typer.Argument(help="identifier column open to PSI")],
    sizes: Annotated[list[int] | None, typer.Option("--size", help="client set sizes to prepare for")] = None,
    cohort: Annotated[bool, typer.Option(help="also prepare the lab's cohort-mode request")] = False,
) -> None:
    """Build (or confirm) the cached setups of DATASET.COLUMN under the active key epoch."""
    from lab.catalog.service import CatalogReader
    from psi_service.setups import SetupCache
    from psi_service.structures import size_bucket

    with runtime() as rt:
        cfg = rt.settings.psi
        with rt.transaction() as s:
            version = CatalogReader(s).get(dataset)
        cache = SetupCache(rt, cfg)
        epoch = cache.keys.active("cli")
        for n in sizes or [10_000]:
            art = cache.setup(version, column, epoch, size_bucket(n, cfg.min_bucket))
            typer.echo(
                f"setup {dataset}.{column} v{version.version} epoch {epoch} bucket {art.client_bound}: "
                f"{art.data_structure}, {art.stored.size:,} bytes, built in {art.build_seconds:.1f} s "
                f"on {art.workers} worker(s)"
            )
        if cohort:
            art = cache.lab_request(version, column, epoch)
            typer.echo(
                f"cohort request {dataset}.{column}: {art.server_size:,} elements, {art.stored.size:,} bytes"
            )
