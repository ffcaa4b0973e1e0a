"""``lab ledger verify --witness``: check the stored log against what witnesses cosigned.

The witnesses, not the lab, are the anchor: for each trusted witness, its latest cosigned
checkpoint (fetched from its monitoring URL, or the latest the lab stored for its key) must verify
with the witness's key, and the log recomputed from the database must have that very root at that
size. The lab's own earlier cosigned checkpoints (each re-verified with the witness keys) narrow a
mismatch down to the range of entries that was rewritten.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from lab.ledger.log import Ledger, VerifyReport
from lab.ledger.models import CheckpointRow, CosignatureRow
from lab.shared.pins import pinned
from witness.note import Checkpoint, NoteError, Verifier, open_note


@dataclass
class TrustedWitness:
    """A witness key the verifier trusts, and where to ask it for its latest checkpoint."""

    verifier: Verifier
    url: str | None = None


@dataclass
class WitnessReport:
    ok: bool
    log: VerifyReport
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def resolve(spec: str) -> TrustedWitness:
    """``URL`` (its key fetched from ``URL/vkey`` once and pinned), ``VKEY``, or ``VKEY@URL``."""
    if spec.startswith(("http://", "https://")):
        r = httpx.get(f"{spec.rstrip('/')}/vkey", timeout=10)
        r.raise_for_status()
        return TrustedWitness(Verifier.from_vkey(pinned(spec, r.text.strip())), spec)
    vkey, _, url = spec.partition("@")
    v = Verifier.from_vkey(vkey)
    if v.sig_type != 0x04:
        raise NoteError(f"{v.name} is not a cosignature/v1 witness key")
    return TrustedWitness(v, url or None)


def _latest_note(ledger: Ledger, w: TrustedWitness, origin: str) -> str | None:
    if w.url:
        r = httpx.get(
            f"{w.url.rstrip('/')}/{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint", timeout=10
        )
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.text
    s = ledger.session
    row = (
        s.execute(
            select(CosignatureRow)
            .where(CosignatureRow.witness == w.verifier.name)
            .order_by(CosignatureRow.size.desc())
        )
        .scalars()
        .first()
    )
    if row is None:
        return None
    cp = s.get(CheckpointRow, row.size)
    return None if cp is None else cp.text + "\n" + cp.signature + row.line


def _witnessed(note: str, log_key: Verifier, w: Verifier) -> Checkpoint:
    text, _ = open_note(note, [w])  # the witness's cosignature must verify
    open_note(note, [log_key])  # and the log's signature (the log key given or pinned)
    return Checkpoint.parse(text)


def verify_with_witnesses(
    ledger: Ledger, origin: str, log_key: Verifier, witnesses: list[TrustedWitness]
) -> WitnessReport:
    """Recompute the log and compare it with each witness's latest cosigned checkpoint."""
    anchors: dict[str, Checkpoint] = {}
    problems: list[str] = []
    for w in witnesses:
        try:
            note = _latest_note(ledger, w, origin)
            if note is None:
                problems.append(f"witness {w.verifier.name} has cosigned no checkpoint of {origin}")
                continue
            anchors[w.verifier.name] = _witnessed(note, log_key, w.verifier)
        except (NoteError, httpx.HTTPError) as exc:
            problems.append(f"witness {w.verifier.name}: {exc}")
    history = _history(ledger, log_key, [w.verifier for w in witnesses])
    sizes = {cp.size for cp in anchors.values()} | set(history)
    roots: dict[int, bytes] = dict.fromkeys(sizes, b"")
    report = ledger.verify(roots)
    out = WitnessReport(ok=report.ok and not problems, log=report, problems=problems)
    for name, cp in sorted(anchors.items()):
        if cp.size > report.size:
            out.ok = False
            out.problems.append(
                f"witness {name} cosigned size {cp.size} but the log holds {report.size} entries: "
                f"entries {report.size}..{cp.size - 1} were deleted"
            )
        elif roots.get(cp.size) != cp.root:
            out.ok = False
            out.problems.append(
                f"REWRITTEN: the log does not match the checkpoint witness {name} cosigned "
                f"at size {cp.size}{_narrow(history, roots)}"
            )
        else:
            out.lines.append(f"witness {name}: log consistent with its cosigned checkpoint at size {cp.size}")
    return out


def _history(ledger: Ledger, log_key: Verifier, keys: list[Verifier]) -> dict[int, bytes]:
    """Root per size of every remembered checkpoint carrying a valid cosignature of a trusted key."""
    out: dict[int, bytes] = {}
    s = ledger.session
    names = [k.name for k in keys]
    for row in s.execute(select(CosignatureRow).where(CosignatureRow.witness.in_(names))).scalars():
        cp = s.get(CheckpointRow, row.size)
        if cp is None:
            continue
        try:
            out[row.size] = _witnessed(
                cp.text + "\n" + cp.signature + row.line,
                log_key,
                next(k for k in keys if k.name == row.witness),
            ).root
        except NoteError:
            continue
    return out


def _narrow(history: dict[int, bytes], roots: dict[int, bytes]) -> str:
    good = [n for n, r in history.items() if roots.get(n) == r]
    bad = [n for n, r in history.items() if roots.get(n) != r]
    if not bad:
        return ""
    lo, hi = max([n for n in good if n < min(bad)], default=0), min(bad)
    if hi - lo == 1:
        return f": entry {lo} was rewritten"
    return f": an entry among {lo}..{hi - 1} was rewritten (the log matches the witnessed size {lo})"
