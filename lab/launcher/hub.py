"""Start and stop a JupyterHub process with the lab's configuration."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from lab.errors import Unavailable
from lab.launcher import isolation
from lab.storage.seaweed import private_log

ROOT = Path(__file__).resolve().parents[2]
HUB_CONFIG = ROOT / "infra" / "jupyterhub" / "jupyterhub_config.py"


@dataclass
class HubProcess:
    """A running JupyterHub (and, when managed, the lab API as its service)."""

    data_dir: Path
    public_port: int
    hub_port: int
    api_port: int
    service_token: str
    env: dict[str, str] = field(default_factory=dict)
    manage_api: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    @property
    def lab_api_url(self) -> str:
        return f"{self.public_url}/services/lab-api"

    @property
    def isolation(self) -> str:
        """How notebook servers are kept apart from the lab: ``accounts`` or ``none``."""
        return isolation.isolation_mode()

    def prepare_isolation(self) -> None:
        """Private data directory; with accounts, the notebook group and its way to the interpreter."""
        mode = self.isolation
        isolation.secure_state(self.data_dir, isolated=mode == "accounts")
        if mode == "accounts":
            gid = isolation.ensure_group()
            isolation.grant_traverse(isolation.notebook_paths(self.data_dir / "homes"), gid)
            isolation.check_reachable(gid, sys.executable)

    def start(self, timeout: float = 90.0) -> HubProcess:
        """Start the Hub and wait until its API (and the managed lab API) answer."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_isolation()
        env = {
            **os.environ,
            **self.env,
            "LAB_DATA_DIR": str(self.data_dir),
            "LAB_HUB_PORT": str(self.public_port),
            "LAB_HUB_API_PORT": str(self.hub_port),
            "LAB_PROXY_API_PORT": str(self.public_port + 1),
            "LAB_API_PORT": str(self.api_port),
            "LAB_HUB__API_TOKEN": self.service_token,
            "LAB_HUB__API_URL": self.api_url,
            "LAB_HUB__PUBLIC_URL": self.public_url,
            "LAB_HUB_MANAGE_API": "1" if self.manage_api else "0",
            "LAB_NOTEBOOK_ISOLATION": self.isolation,
        }
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = f"{bin_dir}:{ROOT / 'node_modules' / '.bin'}:{env.get('PATH', '')}"
        log = private_log(self.data_dir / "jupyterhub.log")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(HUB_CONFIG)],
            cwd=self.data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=0o077,  # the Hub, its proxy and the managed lab API create private files
        )
        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"token {self.service_token}"}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(
                    f"JupyterHub exited ({self.process.returncode}); see {self.data_dir}/jupyterhub.log"
                )
            try:
                ok = httpx.get(f"{self.api_url}/user", headers=headers, timeout=2).status_code == 200
                if ok and self.manage_api:
                    ok = httpx.get(f"{self.lab_api_url}/healthz", timeout=2).status_code == 200
                if ok:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise Unavailable(f"JupyterHub not ready in {timeout}s; see {self.data_dir}/jupyterhub.log")

    def stop(self) -> None:
        """Stop the Hub; it stops its proxy, managed services and spawned servers."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(5)
        if self.process:  # the proxy stays behind when the Hub exits without stopping it: end its group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            self._stop_orphan_proxy()
        self.process = None

    def _stop_orphan_proxy(self) -> None:
        """End the proxy a Hub left behind (by the pid file it writes in its working directory).

        JupyterHub runs configurable-http-proxy in a session of its own and stops it only on a clean
        shutdown; a Hub ended during its startup (its signal handlers come last) leaves it running.
        """
        pid_file = self.data_dir / "jupyterhub-proxy.pid"
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"configurable-http-proxy" in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        pid_file.unlink(missing_ok=True)
