"""Shared CLI plumbing: settings (with the embedded demo's secrets), runtime, error display."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer
from pydantic import SecretStr

from lab.errors import LabError
from lab.runtime import Runtime
from lab.settings import Settings, get_settings
from lab.shared.pins import PinMismatch

F = TypeVar("F", bound=Callable[..., Any])


def cli_settings() -> Settings:
    """Settings from the environment; in embedded mode, secrets of a local ``lab up`` fill the gaps."""
    settings = get_settings()
    path = settings.data_dir / "secrets.json"
    if settings.mode != "embedded" or not path.exists():
        return settings
    sec = json.loads(path.read_text())
    update: dict[str, Any] = {}
    if "LAB_SECRET_KEY" not in os.environ:
        update["secret_key"] = SecretStr(sec["secret_key"])
    s3: dict[str, Any] = {}
    if "LAB_S3__ACCESS_KEY" not in os.environ:
        s3 = {"access_key": sec["s3_access_key"], "secret_key": SecretStr(sec["s3_secret_key"])}
    if s3:
        update["s3"] = settings.s3.model_copy(update=s3)
    if "LAB_HUB__API_TOKEN" not in os.environ:
        update["hub"] = settings.hub.model_copy(update={"api_token": SecretStr(sec["hub_service_token"])})
    return settings.model_copy(update=update)


@contextmanager
def runtime() -> Iterator[Runtime]:
    rt = Runtime(cli_settings())
    try:
        yield rt
    finally:
        rt.close()


def handle_errors(fn: F) -> F:
    """Print a LabError as one clear line and exit 1 (2 for the caller's mistakes); a key that no
    longer matches its pin (:class:`~lab.shared.pins.PinMismatch`) is a refusal too, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabError as exc:
            typer.secho(f"error: {exc.detail}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2 if exc.status < 500 else 1) from None
        except PinMismatch as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
