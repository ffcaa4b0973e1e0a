"""The CLI's error wrapper: refusals are one clear line and an exit code, never a traceback."""

from __future__ import annotations

import pytest
import typer

from lab.cli.common import handle_errors
from lab.errors import BadRequest
from lab.shared.pins import PinMismatch


def test_a_changed_pinned_key_is_a_one_line_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    @handle_errors
    def verify() -> None:
        raise PinMismatch("http://w now serves key B, but A was pinned: refusing")

    with pytest.raises(typer.Exit) as exit_:
        verify()
    assert exit_.value.exit_code == 1
    assert capsys.readouterr().err.strip() == "error: http://w now serves key B, but A was pinned: refusing"


def test_a_callers_mistake_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    @handle_errors
    def command() -> None:
        raise BadRequest("no such option")

    with pytest.raises(typer.Exit) as exit_:
        command()
    assert exit_.value.exit_code == 2
    assert "error: no such option" in capsys.readouterr().err
