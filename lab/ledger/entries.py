"""The ledger's personality: which entry kinds exist and how they are canonicalized.

An entry is ``{"kind": ..., "v": ..., "time": ..., "actor": ..., "body": {...}}`` serialized
as canonical JSON (RFC 8785 subset: sorted keys, no insignificant whitespace, UTF-8,
integers and strings only — decimals are written as strings so they never drift).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from lab.shared.standalone import canonical

#: kind -> current schema version. A kind's meaning never changes in place. Exactly the kinds the code
#: appends (``tests/unit/test_web_i18n.py`` collects them from the source and compares).
KINDS: dict[str, int] = {
    "catalog.dataset_version": 1,
    "project.transition": 1,
    "project.disposal": 1,
    "derived.record": 1,
    "product.transition": 1,
    "psi.key_epoch": 1,
    "artifact.published": 1,
}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"not canonicalizable: {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes of ``value``.

    >>> canonical_json({"b": 1, "a": [True, None, "é"]})
    b'{"a":[true,null,"\\xc3\\xa9"],"b":1}'
    """
    if isinstance(value, float):
        raise TypeError("floats are not canonical; use Decimal or str")
    return canonical(value, default=_default)


def make_entry(kind: str, body: dict[str, Any], actor: str, time: dt.datetime) -> dict[str, Any]:
    """A new entry of a known kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    _reject_floats(body)
    return {"kind": kind, "v": KINDS[kind], "actor": actor, "time": _default(time), "body": body}


def _reject_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("ledger entries carry no floats; use Decimal or str")
    if isinstance(value, dict):
        for v in value.values():
            _reject_floats(v)
    elif isinstance(value, list | tuple):
        for v in value:
            _reject_floats(v)
