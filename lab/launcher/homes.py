"""Fill a notebook home: the example notebooks (``~/notebooks``) and quiet JupyterLab settings.

Run as the home's own account (``python -m lab.launcher.homes HOME``) when notebooks are isolated, so
that nothing is ever written as root into a directory the user controls; never overwrites their edits.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
#: JupyterLab user settings written once into a new home: no news or update pop-ups (no Internet here).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": '{"fetchNews": "false", '
    '"checkForUpdates": false}\n',
}


def fill_home(home: Path) -> None:
    """Copy the example notebooks and settings into ``home`` where they are missing."""
    target = home / "notebooks"
    target.mkdir(parents=True, exist_ok=True)
    for nb in sorted(NOTEBOOKS.glob("*.ipynb")):
        if not (target / nb.name).exists():
            shutil.copyfile(nb, target / nb.name)
    for name, text in LAB_SETTINGS.items():
        path = home / ".jupyter" / "lab" / "user-settings" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


if __name__ == "__main__":
    fill_home(Path(sys.argv[1]))
