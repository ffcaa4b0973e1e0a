"""Ledger status: the signed tree head, the witnesses (last size cosigned, lag, quorum warning),
entries by kind, the latest entries, the last verification.

The last verification result is kept in ``<data_dir>/web/ledger-verification.json`` (written
atomically by whoever runs it from the pages); a run recomputes the whole log, so the page shows the
stored result rather than recomputing on every view.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from lab.db.base import utcnow
from lab.ledger import Ledger
from lab.ledger.cosign import grace_seconds, quorum_met, quorum_pending, witness_status
from lab.settings import Settings

RECENT = 20


def _result_path(settings: Settings) -> Path:
    return settings.data_dir / "web" / "ledger-verification.json"


def last_verification(settings: Settings) -> dict[str, Any] | None:
    """The stored result of the last verification run from the pages, if any."""
    path = _result_path(settings)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


def run_verification(settings: Settings, ledger: Ledger, actor: str) -> dict[str, Any]:
    """Recompute the whole log, store and return the result."""
    r = ledger.verify()
    result = {
        "ok": r.ok,
        "size": r.size,
        "root_hash": r.root_hash,
        "checked_tree_heads": r.checked_tree_heads,
        "first_bad_index": r.first_bad_index,
        "reason": r.reason,
        "by": actor,
        "at": utcnow().isoformat(),
    }
    path = _result_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def ledger_status(settings: Settings, ledger: Ledger, *, detail: bool) -> dict[str, Any]:
    """Everything the ledger page shows.

    ``detail`` (bureau and auditors): entries by kind, the latest entries with their actors and the
    last verification. Without it, only the signed tree head — what the public checkpoint shows.
    """
    head = ledger.head().as_dict()
    head["signed_at"] = dt.datetime.fromtimestamp(head["timestamp_ms"] / 1000, dt.UTC)
    if not detail:
        return {"head": head, "detail": False, "kinds": [], "recent": [], "last": None}
    recent = ledger.entries(max(0, head["size"] - RECENT), RECENT)
    cfg = settings.ledger
    statuses = witness_status(ledger.session, cfg, head["size"])
    return {
        "origin": cfg.origin,
        "witnesses": statuses,
        "quorum": cfg.quorum,
        "cosigned_now": sum(1 for w in statuses if w.size == head["size"]),
        "quorum_met": quorum_met(statuses, cfg.quorum, head["size"]),
        "quorum_pending": quorum_pending(statuses, cfg.quorum, head["size"], grace_seconds(cfg), utcnow()),
        "grace": int(grace_seconds(cfg)),
        "head": head,
        "detail": True,
        "kinds": sorted(ledger.count_by_kind().items()),
        "recent": list(reversed(recent)),
        "last": last_verification(settings),
    }
