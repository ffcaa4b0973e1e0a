"""``lab up`` / ``lab down`` / ``lab token`` / ``lab serve``: run the lab on one machine."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from lab.cli.common import cli_settings, handle_errors
from lab.settings import Settings


def register(app: typer.Typer) -> None:
    """Add the stack commands to the top-level app."""
    app.command("up")(up)
    app.command("down")(down)
    app.command("token")(token)
    app.command("serve")(serve)
    app.command("bench")(bench)


def _load_sample(settings_dir: Path, scale: int, rt_settings: Settings) -> list[str]:
    from lab.catalog.policy import load_policy
    from lab.catalog.service import CatalogImporter, CatalogReader
    from lab.runtime import Runtime
    from lab.sample.generate import generate

    rt = Runtime(rt_settings)
    loaded: list[str] = []
    try:
        rt.store.ensure_buckets()
        with rt.transaction() as session:
            if CatalogReader(session).list():
                return []
        out = settings_dir / "sample"
        generate(scale, out, progress=True)
        for policy_file in sorted((out / "policies").glob("*.yaml")):
            pol = load_policy(policy_file)
            with rt.transaction() as session:
                CatalogImporter(session, rt.store, rt.ledger(session)).import_file(
                    out / f"{pol.dataset}.parquet", pol, "steward1"
                )
            loaded.append(pol.dataset)
    finally:
        rt.close()
    return loaded


@handle_errors
def up(
    scale: Annotated[int, typer.Option(help="sample residents to generate on first start")] = 20000,
    public_port: Annotated[int, typer.Option(help="JupyterHub's public port")] = 8000,
    s3_port: Annotated[int, typer.Option(help="SeaweedFS S3 port")] = 8333,
) -> None:
    """Start SeaweedFS, the database, JupyterHub and the lab API with sample data; Ctrl-C stops."""
    from lab.db.migrate import upgrade
    from lab.launcher.stack import Ports, Stack, embedded_settings

    settings = cli_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        settings, Ports(public=public_port, hub=public_port + 81, api=public_port + 181, s3=s3_port)
    )
    if stack.isolation == "none":
        from lab.launcher.isolation import NOT_ISOLATED

        typer.secho(f"WARNING: {NOT_ISOLATED}", fg=typer.colors.RED, bold=True, err=True)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        typer.echo("starting SeaweedFS (S3) ...")
        stack.start_storage()
        s = embedded_settings(settings, stack.secrets)
        s = s.model_copy(update={"s3": s.s3.model_copy(update={"endpoint": stack.s3_endpoint})})
        typer.echo("migrating the database ...")
        upgrade(s.db_url)
        loaded = _load_sample(settings.data_dir, scale, s)
        if loaded:
            typer.echo(f"loaded sample catalog: {', '.join(loaded)}")
        typer.echo("starting JupyterHub and the lab API ...")
        stack.start_hub()
        assert stack.hub is not None
        (settings.data_dir / "run.json").write_text(
            json.dumps(
                {"launcher": os.getpid(), "hub_api": stack.hub.api_url, "public_url": stack.hub.public_url}
            )
        )
        pw = stack.secrets["passwords"]
        typer.echo("")
        typer.secho("The lab is up.", fg=typer.colors.GREEN, bold=True)
        typer.echo(f"  JupyterHub      {stack.hub.public_url}/hub/login")
        typer.echo(
            f"  lab API         {stack.hub.lab_api_url}/docs  (healthz: {stack.hub.lab_api_url}/healthz)"
        )
        typer.echo(f"  S3 (SeaweedFS)  http://{stack.s3_endpoint}")
        typer.echo("  demo accounts (user / password / role):")
        from lab.launcher.isolation import NOT_ISOLATED
        from lab.launcher.stack import DEMO_ACCOUNTS

        for user, groups in DEMO_ACCOUNTS.items():
            typer.echo(f"    {user:10} {pw[user]:14} {','.join(groups)}")
        typer.echo(
            f"  demo project    {stack.demo_project} (alice; open ~/notebooks/00-getting-started.ipynb)"
        )
        typer.echo("  a token for scripts:  lab token alice")
        if stack.isolation == "accounts":
            typer.echo("  notebooks       isolated: each user's server runs as the system account lab-<user>")
        elif stack.isolation == "sandbox":
            typer.echo("  notebooks       sandboxed (bubblewrap): no view of the lab's files (same user id)")
        else:
            typer.secho(f"  WARNING: {NOT_ISOLATED}", fg=typer.colors.RED, bold=True)
        typer.echo("Ctrl-C or `lab down` stops everything.")
        while not stopping:
            if stack.hub.process is None or stack.hub.process.poll() is not None:
                typer.secho("JupyterHub exited; stopping.", fg=typer.colors.RED, err=True)
                break
            time.sleep(0.5)
    finally:
        typer.echo("stopping ...")
        stack.stop()
        (settings.data_dir / "run.json").unlink(missing_ok=True)
        typer.echo("stopped.")


@handle_errors
def down() -> None:
    """Stop a running ``lab up``."""
    settings = cli_settings()
    run = settings.data_dir / "run.json"
    if not run.exists():
        typer.echo("the lab is not running")
        return
    pid = json.loads(run.read_text())["launcher"]
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        run.unlink(missing_ok=True)
        typer.echo("the lab was not running (stale state removed)")
        return
    deadline = time.monotonic() + 60
    while run.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
    typer.echo("stopped" if not run.exists() else "still stopping; check the `lab up` terminal")


@handle_errors
def token(
    user: str,
    expires_in: Annotated[int, typer.Option(help="seconds until the token expires (0: never)")] = 0,
) -> None:
    """Print a Hub API token for USER (a demo account), for scripts and tests."""
    from lab.identity.hub import HubClient

    settings = cli_settings()
    run = settings.data_dir / "run.json"
    hub_cfg = settings.hub
    if run.exists():
        hub_cfg = hub_cfg.model_copy(update={"api_url": json.loads(run.read_text())["hub_api"]})
    client = HubClient(hub_cfg)
    try:
        typer.echo(client.create_token(user, note="lab token (CLI)", expires_in=expires_in or None))
    finally:
        client.close()


@handle_errors
def serve(
    host: str = "127.0.0.1",
    port: int = 8181,
) -> None:
    """Run the lab API alone (normally JupyterHub runs it as a managed service)."""
    import uvicorn

    uvicorn.run("lab.api.main:app_factory", factory=True, host=host, port=port)


def bench(
    quick: Annotated[bool, typer.Option(help="small sizes: only check the benchmarks run")] = False,
    only: Annotated[list[str] | None, typer.Argument(help="benchmark names (default: all)")] = None,
) -> None:
    """Run the benchmarks in bench/ (each prints its figures beside a same-run baseline)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "bench" / "run_all.py"
    if not script.exists():
        typer.secho("bench/ is not part of this installation (run from a source checkout)", err=True)
        raise typer.Exit(2)
    raise typer.Exit(
        subprocess.call([sys.executable, str(script), *(["--quick"] if quick else []), *(only or [])])
    )
