"""``lab``: run, administer and inspect the Public Data Innovation Lab."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lab.cli.common import cli_settings, handle_errors, runtime
from lab.cli.he import he
from lab.cli.ledger_witness import register as register_ledger_witness
from lab.cli.products import products
from lab.cli.projects import projects
from lab.cli.psi import psi
from lab.cli.sample import sample
from lab.cli.stack import register as register_stack
from lab.cli.witness import witness as witness_app

app = typer.Typer(help="Public Data Innovation Lab", no_args_is_help=True, pretty_exceptions_enable=False)
db = typer.Typer(help="Database migrations", no_args_is_help=True)
datasets = typer.Typer(help="Catalog: import and list datasets", no_args_is_help=True)
ledger = typer.Typer(help="The tamper-evident ledger", no_args_is_help=True)
app.add_typer(db, name="db")
app.add_typer(datasets, name="datasets")
app.add_typer(ledger, name="ledger")
register_stack(app)
app.add_typer(witness_app, name="witness")
register_ledger_witness(ledger)
app.add_typer(products, name="products")
app.add_typer(projects, name="projects")
app.add_typer(psi, name="psi")
app.add_typer(he, name="he")
app.add_typer(sample, name="sample")


@db.command("upgrade")
@handle_errors
def db_upgrade(revision: str = "heads") -> None:
    """Migrate the database to REVISION (default: the newest)."""
    from lab.db.migrate import upgrade

    settings = cli_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.db_url, revision)
    typer.echo(f"database at {revision}: {settings.db_url.split('@')[-1]}")


@datasets.command("import")
@handle_errors
def datasets_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or Parquet file")],
    policy: Annotated[Path, typer.Option("--policy", exists=True, dir_okay=False, help="policy YAML")],
    actor: Annotated[str, typer.Option(help="who imports (recorded in the ledger)")] = "steward-cli",
) -> None:
    """Validate FILE against POLICY and import it as the dataset's next version."""
    from lab.catalog.policy import load_policy
    from lab.catalog.service import CatalogImporter

    pol = load_policy(policy)
    with runtime() as rt, rt.transaction() as session:
        rt.store.ensure_buckets()
        v = CatalogImporter(session, rt.store, rt.ledger(session)).import_file(file, pol, actor)
    typer.echo(
        f"imported {v.dataset} version {v.version}: {v.row_count} rows, sha256 {v.sha256}, "
        f"ledger entry {v.ledger_index}"
    )


@datasets.command("list")
@handle_errors
def datasets_list() -> None:
    """List the catalog (current versions)."""
    from lab.catalog.service import CatalogReader

    with runtime() as rt, rt.transaction() as session:
        for v in CatalogReader(session).list():
            typer.echo(
                f"{v.dataset:24} v{v.version:<3} {v.row_count:>10} rows  {v.policy.open.value:13} "
                f"{v.policy.classification.value}  {v.policy.title.zh}"
            )


@ledger.command("head")
@handle_errors
def ledger_head() -> None:
    """Print the current signed tree head."""
    with runtime() as rt, rt.transaction() as session:
        typer.echo(json.dumps(rt.ledger(session).head().as_dict(), indent=2))


@ledger.command("verify")
@handle_errors
def ledger_verify(
    witness: Annotated[
        list[str] | None,
        typer.Option("--witness", help="trusted witness: URL (key pinned on first use), VKEY or VKEY@URL"),
    ] = None,
    log_key: Annotated[
        str | None, typer.Option("--log-key", help="the log's vkey (default: pinned from the database)")
    ] = None,
) -> None:
    """Recompute the whole log; name the first entry that was changed, deleted or reordered.

    With ``--witness``, also check the log against the latest checkpoint each witness cosigned:
    this catches a rewrite by whoever holds the database and the lab's keys.
    """
    if witness:
        from lab.cli.ledger_witness import verify_with_witnesses

        verify_with_witnesses(witness, log_key)
        return
    with runtime() as rt, rt.transaction() as session:
        report = rt.ledger(session).verify()
    if report.ok:
        typer.echo(
            f"ok: {report.size} entries, root {report.root_hash}, "
            f"{report.checked_tree_heads} signed tree heads consistent"
        )
        return
    typer.secho(f"TAMPERED: {report.reason}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@ledger.command("proof")
@handle_errors
def ledger_proof(
    index: int,
    out: Annotated[Path | None, typer.Option(help="write the proof JSON here")] = None,
    witnessed: Annotated[bool, typer.Option(help="against the latest witness-cosigned checkpoint")] = False,
) -> None:
    """Print an inclusion proof of entry INDEX (with the checkpoint of its tree)."""
    from lab.ledger.checkpoints import inclusion_with_checkpoint

    with runtime() as rt, rt.transaction() as session:
        cfg = rt.settings.ledger
        proof = inclusion_with_checkpoint(rt.ledger(session), index, cfg.origin, cfg.quorum, None, witnessed)
    text = json.dumps(proof, indent=2, ensure_ascii=False)
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text)


@ledger.command("check-proof")
def ledger_check_proof(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    log_key: Annotated[
        list[str] | None, typer.Option("--log-key", help="the log's vkey or KEY_ID=BASE64 (required)")
    ] = None,
    witness: Annotated[list[str] | None, typer.Option("--witness", help="trusted witness vkey")] = None,
    quorum: Annotated[int | None, typer.Option(help="cosignatures needed (default: all witnesses)")] = None,
) -> None:
    """Verify an inclusion proof offline (no database, no network) against keys YOU give."""
    from lab.shared.standalone import LOG_KEY_ONLY, trusted_log_keys, verify_inclusion_document

    try:
        keys = trusted_log_keys(log_key or [])
    except ValueError as exc:
        typer.secho(f"INVALID: bad --log-key: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    wit = witness or []
    ok, reason = verify_inclusion_document(
        json.loads(file.read_text()), keys, wit, len(wit) if quorum is None else quorum
    )
    if ok:
        typer.echo(f"ok: {reason}" + ("" if wit else f" ({LOG_KEY_ONLY})"))
        return
    typer.secho(f"INVALID: {reason}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
