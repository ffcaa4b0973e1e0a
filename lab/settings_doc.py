"""Render the configuration reference (``docs/configuration.md``) from the settings models.

``python -m lab.settings_doc > docs/configuration.md``; a test keeps the file current.
"""

from __future__ import annotations

from pydantic import BaseModel

from he_compute.worker import WorkerLimits
from lab.settings import Settings


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(_rows(ann, f"{prefix}{name.upper()}__"))
            continue
        default = field.get_default(call_default_factory=True)
        shown = "(secret)" if "Secret" in str(ann) else str(default) if default not in (None, "") else "—"
        rows.append(f"| `{prefix}{name.upper()}` | {field.description or ''} | `{shown}` |")
    return rows


def render() -> str:
    """The Markdown reference of every setting."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `lab/settings.py` by `python -m lab.settings_doc`; do not edit by hand.",
        "Settings come from environment variables (or a `.env` file); nested groups use `__`.",
        "In `production` mode the lab refuses demo secrets and a SQLite database.",
        "",
        "| variable | meaning | default |",
        "|---|---|---|",
        *_rows(Settings, "LAB_"),
        "",
        "The HE worker pool and multi-part calls read their own group (`he_compute.worker.WorkerLimits`):",
        "",
        "| variable | meaning | default |",
        "|---|---|---|",
        *_rows(WorkerLimits, "LAB_HE_"),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")  # noqa: T201
