"""Keys fetched once and pinned: a verifier that was not given a key remembers the first it saw.

The pin file (``LAB_PINS`` or ``~/.config/lab/pins.json``) maps a source (a lab's or a witness's
URL) to the verifier key it served. A later answer with another key is refused, so a lab (or a
witness) cannot swap its key under a verifier that once trusted it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class PinMismatch(ValueError):
    """The source now serves a key other than the one pinned."""


def pin_path() -> Path:
    env = os.environ.get("LAB_PINS")
    return Path(env) if env else Path.home() / ".config" / "lab" / "pins.json"


def pinned(source: str, fetched: str, path: Path | None = None) -> str:
    """The pinned key of ``source``: ``fetched`` is pinned on first use and must match after."""
    path = path or pin_path()
    pins: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    key = source.rstrip("/")
    have = pins.get(key)
    if have is None:
        pins[key] = fetched
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(pins, indent=2, sort_keys=True), encoding="utf-8")
        return fetched
    if have != fetched:
        raise PinMismatch(f"{key} now serves key {fetched}, but {have} was pinned: refusing")
    return have
