"""``lab witness``: run a C2SP witness (imports only the standalone ``witness`` package)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

witness = typer.Typer(help="Run an independent witness of a lab's ledger", no_args_is_help=True)


@witness.command("serve")
def serve(
    state: Annotated[Path, typer.Option(help="directory holding the witness key and SQLite state")],
    name: Annotated[str, typer.Option(help="key name, e.g. witness.example.org/w1")],
    log: Annotated[list[str], typer.Option("--log", help="verifier key of a log to witness (repeatable)")],
    host: str = "127.0.0.1",
    port: int = 8390,
) -> None:
    """Serve add-checkpoint and the monitoring checkpoint for the given logs."""
    from witness.__main__ import main

    args = ["serve", "--state", str(state), "--name", name, "--host", host, "--port", str(port)]
    for vkey in log:
        args += ["--log", vkey]
    raise typer.Exit(main(args))


@witness.command("vkey")
def vkey(
    state: Annotated[Path, typer.Option(help="the witness's state directory")],
    name: Annotated[str, typer.Option(help="its key name")],
) -> None:
    """Print the witness's verifier key (created on first use)."""
    from witness.core import Witness

    typer.echo(Witness.open(state, name, []).vkey)


@witness.command("evidence")
def evidence(
    state: Annotated[Path, typer.Option(help="the witness's state directory")],
    origin: Annotated[str | None, typer.Option(help="only this log origin")] = None,
) -> None:
    """Print, as JSON, every log-signed checkpoint that contradicted one this witness had cosigned,
    next to it, with the whole request (exit 1 if there is any: the log misbehaved)."""
    from witness.__main__ import main

    raise typer.Exit(main(["evidence", "--state", str(state), *(["--origin", origin] if origin else [])]))
