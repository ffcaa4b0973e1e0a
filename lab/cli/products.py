"""``lab products``: list, show, review, revoke (through the API) and verify certificates (offline).

The API commands read ``LAB_API_URL`` and ``LAB_API_TOKEN`` / ``JUPYTERHUB_API_TOKEN`` (or
``--url`` / ``--token``). ``verify`` needs neither: it checks a certificate file offline, and
with ``--against URL`` (the lab's public registry) or ``--ledger-head FILE`` (a saved registry
status document) also that the log was not rewritten since and whether the product was revoked.
Exit codes of ``verify``: 0 valid, 1 invalid, 3 valid but revoked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

products = typer.Typer(help="Products: registration, review, certificates", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option("--url", help="lab API URL (default: LAB_API_URL)")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="API token (default: LAB_API_TOKEN)")]


def _client(url: str | None, token: str | None) -> Any:
    import lab.client as lc

    return lc.connect(url, token)


def _run(fn: Any) -> Any:
    import lab.client as lc

    try:
        return fn()
    except lc.LabError as exc:
        typer.secho(f"error: {exc.detail}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2 if exc.status < 500 else 1) from None


@products.command("list")
def list_cmd(
    project: Annotated[str | None, typer.Option(help="only this project")] = None,
    status: Annotated[str | None, typer.Option(help="pending, registered, rejected, revoked")] = None,
    queue: Annotated[bool, typer.Option("--queue", help="the bureau's review queue instead")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List products (or the review queue)."""
    with _client(url, token) as c:
        frame = _run(lambda: c.products.queue() if queue else c.products.list(project, status))
    typer.echo(frame.to_string(index=False) if len(frame) else "(none)")


@products.command("show")
def show(product_id: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Show a product: versions, checks, lineage and history (JSON)."""
    with _client(url, token) as c:
        typer.echo(json.dumps(_run(lambda: c.products.get(product_id)), ensure_ascii=False, indent=2))


@products.command("review")
def review(
    product_id: str,
    decision: Annotated[str, typer.Argument(help="approve or reject")],
    reason: Annotated[
        str, typer.Option(help="required to reject, or to approve a flagged version (two reviewers)")
    ] = "",
    version: Annotated[int | None, typer.Option(help="default: the latest")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Approve or reject a product version (bureau)."""
    with _client(url, token) as c:
        p = _run(lambda: c.products.review(product_id, decision, reason, version))
    typer.echo(f"{p['id']}: {p['status']} {p.get('registration_number') or ''}".rstrip())
    latest = p.get("latest") or {}
    if p["status"] == "pending" and latest.get("approvals"):  # a flagged version: two-person rule
        typer.echo(
            f"approved by {', '.join(latest['approvals'])}; "
            f"needs {latest['approvals_required']} different reviewers"
        )


@products.command("revoke")
def revoke(
    product_id: str,
    reason: Annotated[str, typer.Option(help="why (required)")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Revoke a registered product (bureau)."""
    with _client(url, token) as c:
        p = _run(lambda: c.products.revoke(product_id, reason))
    typer.echo(f"{p['id']}: {p['status']}")


@products.command("certificate")
def certificate(
    product_id: str,
    out: Annotated[Path, typer.Option(help="write the certificate here")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Download the certificate of a product's approved version."""
    with _client(url, token) as c:
        _run(lambda: c.products.certificate(product_id, save=out))
    typer.echo(f"wrote {out}")


def fetch_status(base_url: str, cert: dict[str, Any]) -> dict[str, Any]:
    """The public registry status document for ``cert`` from the lab at ``base_url``."""
    number, since = cert["registration_number"], int(cert["ledger"]["tree_size"])
    r = httpx.get(
        f"{base_url.rstrip('/')}/api/v1/registry/{number}/status", params={"since": since}, timeout=30
    )
    if r.status_code != 200:
        raise typer.BadParameter(f"{base_url} answered {r.status_code}: {r.text[:200]}")
    doc: dict[str, Any] = r.json()
    return doc


@products.command("status")
def status(
    cert_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="certificate JSON")],
    against: Annotated[str, typer.Option("--against", help="lab API URL")],
    out: Annotated[Path, typer.Option(help="write the registry status document here")],
) -> None:
    """Save the registry status document of a certificate (for a later offline --ledger-head)."""
    doc = fetch_status(against, json.loads(cert_file.read_text(encoding="utf-8")))
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    typer.echo(f"wrote {out} (tree size {doc['tree_head']['size']})")


@products.command("verify")
def verify(
    cert_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="certificate JSON")],
    artifact: Annotated[
        Path | None, typer.Option("--artifact", exists=True, dir_okay=False, help="the product file")
    ] = None,
    against: Annotated[
        str | None, typer.Option("--against", help="lab API URL: check the current log")
    ] = None,
    ledger_head: Annotated[
        Path | None,
        typer.Option("--ledger-head", exists=True, dir_okay=False, help="saved registry status document"),
    ] = None,
    trusted_key: Annotated[
        list[str] | None,
        typer.Option("--log-key", "--trusted-key", help="the log's vkey or KEY_ID=BASE64 (required)"),
    ] = None,
    witness: Annotated[list[str] | None, typer.Option("--witness", help="trusted witness vkey")] = None,
    quorum: Annotated[int | None, typer.Option(help="cosignatures needed (default: all witnesses)")] = None,
) -> None:
    """Verify a product certificate offline against keys YOU give: the log's (required) and the
    witnesses' (their cosignatures on the certificate's checkpoint); proofs; artifact digest."""
    from lab.shared.certificates import verify_certificate
    from lab.shared.standalone import LOG_KEY_ONLY, trusted_log_keys

    try:
        cert = json.loads(cert_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        typer.secho(f"INVALID: not a JSON certificate ({exc})", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    status_doc = None
    if ledger_head is not None:
        status_doc = json.loads(ledger_head.read_text(encoding="utf-8"))
    elif against:
        status_doc = fetch_status(against, cert)
    try:
        keys = trusted_log_keys(trusted_key or [])
    except ValueError as exc:
        typer.secho(f"INVALID: bad --log-key: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    report = verify_certificate(cert, artifact, status_doc, keys, witness or [], quorum)
    for line in report.checked:
        typer.echo(f"  ok  {line}")
    if not report.ok:
        typer.secho(f"INVALID: {report.reason}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    if report.revoked:
        rev = report.revocation or {}
        typer.secho(
            f"REVOKED: {report.registration_number} was revoked at {rev.get('time')} by {rev.get('by')}: "
            f"{rev.get('reason')}",
            fg=typer.colors.YELLOW,
        )
        raise typer.Exit(3)
    fresh = "" if status_doc is not None else " (offline; add --against URL to check revocation)"
    wit = f", cosigned by {len(witness)} trusted witness key(s)" if witness else f" ({LOG_KEY_ONLY})"
    typer.echo(f"VALID: {report.registration_number}, log key {report.key_id}{wit}{fresh}")
