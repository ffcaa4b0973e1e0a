"""``lab ledger`` commands about witnesses: verify against them, audit bundles, the log's vkey."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lab.cli.common import handle_errors, runtime


def register(ledger: typer.Typer) -> None:
    """Add ``vkey`` and ``audit-bundle`` to the ``lab ledger`` group."""
    ledger.command("vkey")(vkey)
    ledger.command("audit-bundle")(audit_bundle)


def verify_with_witnesses(specs: list[str], log_key: str | None) -> None:
    """``lab ledger verify --witness``: the log against each witness's latest cosigned checkpoint."""
    from lab.ledger import checkpoints
    from lab.ledger.audit import resolve, verify_with_witnesses
    from lab.shared.pins import pinned
    from witness.note import Verifier

    trusted = [resolve(s) for s in specs]
    with runtime() as rt, rt.transaction() as session:
        ledger = rt.ledger(session)
        origin = rt.settings.ledger.origin
        stored = checkpoints.log_verifier(ledger, origin).vkey
        key = Verifier.from_vkey(log_key or pinned(f"log:{origin}", stored))
        rep = verify_with_witnesses(ledger, origin, key, trusted)
    for line in rep.lines:
        typer.echo(f"  ok  {line}")
    for w in trusted:
        if w.url is None:
            typer.echo(
                f"  note witness {w.verifier.name}: no URL given, so its latest checkpoint is the lab's "
                "stored copy (an operator can withhold newer ones); give VKEY@URL to ask the witness itself"
            )
    if rep.ok:
        typer.echo(f"ok: {rep.log.size} entries, consistent with {len(trusted)} witness(es)")
        return
    for problem in rep.problems + ([rep.log.reason] if rep.log.reason else []):
        typer.secho(f"TAMPERED: {problem}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@handle_errors
def audit_bundle(
    witness: Annotated[list[str], typer.Option("--witness", help="witness URL (its monitoring prefix)")],
    out: Annotated[Path, typer.Option(help="write the bundle JSON here")],
) -> None:
    """Bundle the log's checkpoint with consistency proofs from each witness's latest cosigned
    checkpoint, for `standalone.py audit.json --log-key ... --witness ...` offline."""
    import hashlib

    import httpx

    from lab.ledger.checkpoints import audit_bundle as make_bundle

    with runtime() as rt, rt.transaction() as session:
        origin = rt.settings.ledger.origin
        path = hashlib.sha256(origin.encode()).hexdigest()
        notes = []
        for url in witness:
            r = httpx.get(f"{url.rstrip('/')}/{path}/checkpoint", timeout=10)
            if r.status_code == 200:
                notes.append(r.text)
        bundle = make_bundle(rt.ledger(session), origin, notes)
    out.write_text(json.dumps(bundle, ensure_ascii=False, indent=2), encoding="utf-8")
    typer.echo(f"wrote {out} ({len(notes)} witnessed checkpoint(s))")


@handle_errors
def vkey() -> None:
    """Print the log's verifier key (give it to verifiers and witnesses)."""
    from lab.ledger import checkpoints

    with runtime() as rt, rt.transaction() as session:
        typer.echo(checkpoints.log_verifier(rt.ledger(session), rt.settings.ledger.origin).vkey)
