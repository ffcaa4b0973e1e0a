"""Keys fetched once are pinned: a source that later serves another key is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.shared.pins import PinMismatch, pinned


def test_first_key_is_pinned_and_a_changed_key_refused(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    assert pinned("log:https://lab.example/api", "lab.example/ledger+0a0b0c0d+AAAA", path) == (
        "lab.example/ledger+0a0b0c0d+AAAA"
    )
    assert pinned("log:https://lab.example/api/", "lab.example/ledger+0a0b0c0d+AAAA", path)  # same source
    with pytest.raises(PinMismatch, match="refusing"):
        pinned("log:https://lab.example/api", "lab.example/ledger+99999999+BBBB", path)
    assert pinned("http://witness.example", "w+1+C", path) == "w+1+C"  # other sources are independent
