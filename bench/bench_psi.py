"""PSI at 100k client × 1M server items: our HTTP endpoint vs the raw openmined-psi library, same run.

Usage::

    .venv/bin/python bench/bench_psi.py                       # 100k × 1M, both modes
    .venv/bin/python bench/bench_psi.py --client 10000 --server 100000 --spu

What is measured (one process for the lab API, a real JupyterHub to resolve the token, SQLite,
SeaweedFS; the server column is ``enterprise_registry.uscc`` of the sample at 1M enterprises):

* **first-time setup**, our pipeline (``psi_service.setups``): EC-encryption of the column on 1
  worker process, then on all cores (a fresh key epoch each time so nothing is cached), plus the
  GCS/Bloom packing for the 100k bucket; next to the raw library's single ``CreateSetupMessage``
  call on the same items, FPR and data structure.
* **per request**, cardinality and intersection: ``client.psi.intersect(...)`` through HTTP with the
  setup cached (server and client side) — normalization, session, blinding, upload, server
  re-encryption (worker pool), download, matching, derived record and ledger entry — next to the
  raw library doing the same protocol phases in one process (``CreateRequest``, ``ProcessRequest``,
  ``GetIntersection[Size]``). Also the endpoint with the server pool limited to one worker.
* **cohort** (roles reversed, the lab's request over the whole column): ``client.psi.intersect(...,
  mode="cohort")`` through HTTP — the lab's fresh per-session request, the operator's setup, answer
  and batched DLEQ proof, the lab's proof check and intersection, the DP charge — next to the raw
  library doing the same phases in one process (the lab's ``CreateRequest`` over the column, the
  operator's ``CreateSetupMessage`` + ``ProcessRequest``, the lab's ``GetIntersection``), no proof.
* optional (``--spu``): SecretFlow SPU's PSI (ECDH on Curve25519, RR22) on the same sets, two parties
  on loopback, installed in a separate venv (``/tmp/spu-venv``). If it cannot be installed or run,
  the reason is printed and the row skipped.

Targets: endpoint per request ≤ 1.2 × raw request+response phases; setup ≥ 1.7× faster on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.factories


def emit(line: str) -> None:
    print(line, flush=True)


def _cpu_seconds() -> float:
    """CPU time of this process and its worker processes (user + system)."""
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _hub(tmp: Path) -> tuple[Any, str]:
    import httpx

    from lab.launcher.hub import HubProcess
    from lab.storage.seaweed import free_port_block

    base = free_port_block(4, 31000, 39000)
    hub = HubProcess(tmp / "hub", base, base + 2, base + 3, secrets.token_hex(32), manage_api=False).start()
    http = httpx.Client(base_url=hub.api_url + "/", headers={"Authorization": f"token {hub.service_token}"})
    http.post("users/alice")  # the Hub config may already define the user and the lab's groups
    http.post("groups/operator")
    http.post("groups/operator/users", json={"users": ["alice"]}).raise_for_status()
    token = http.post("users/alice/tokens", json={"note": "bench"}).json()["token"]
    return hub, str(token)


def _serve(rt: Any) -> tuple[Any, str]:
    import socket

    import uvicorn

    from lab.api.main import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime=rt), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def _client_items(server_items: list[str], n: int, rng: random.Random) -> list[str]:
    from lab.identifiers import make_uscc

    inside = rng.sample(server_items, n // 2)
    known = set(server_items)
    out = list(inside)
    while len(out) < n:
        body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
        v = make_uscc("9", "2", "310151", body)
        if v not in known:
            out.append(v)
    rng.shuffle(out)
    return out


def _raw(
    server_items: list[str], client_items: list[str], fpr: float, bucket: int, ds: str
) -> dict[str, float]:
    import private_set_intersection.python as psi

    kind = psi.DataStructure.GCS if ds == "gcs" else psi.DataStructure.BLOOM_FILTER
    server = psi.server.CreateWithNewKey(True)
    t = time.perf_counter()
    setup = server.CreateSetupMessage(fpr, bucket, server_items, kind)
    out = {"setup": time.perf_counter() - t}
    for mode, reveal in (("cardinality", False), ("intersection", True)):
        srv = psi.server.CreateFromKey(server.GetPrivateKeyBytes(), reveal)
        client = psi.client.CreateWithNewKey(reveal)
        t0 = time.perf_counter()
        request = client.CreateRequest(client_items)
        t1 = time.perf_counter()
        response = srv.ProcessRequest(request)
        t2 = time.perf_counter()
        got = (
            client.GetIntersection(setup, response) if reveal else client.GetIntersectionSize(setup, response)
        )
        t3 = time.perf_counter()
        out[f"{mode}:request"], out[f"{mode}:response"], out[f"{mode}:match"] = t1 - t0, t2 - t1, t3 - t2
        out[f"{mode}:total"] = t3 - t0
        out[f"{mode}:size"] = float(len(got) if reveal else got)
    return out


SPU_SCRIPT = r"""import sys, time, multiprocessing as mp
def party(rank, proto, a, b, out, port):
    import spu.libspu.link as link, spu.psi as psi
    desc = link.Desc(); desc.id = f"bench-{proto}"
    desc.add_party("a", f"127.0.0.1:{port}"); desc.add_party("b", f"127.0.0.1:{port+1}")
    lctx = link.create_brpc(desc, rank)
    curve = psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_25519)
    pc = psi.PsiProtocolConfig(protocol=getattr(psi.PsiProtocol, proto), receiver_rank=0, ecdh_params=curve)
    cfg = psi.PsiExecuteConfig(protocol_conf=pc,
        input_params=psi.InputParams(path=[a, b][rank], selected_keys=["id"], keys_unique=True),
        output_params=psi.OutputParams(path=out + f".{rank}", disable_alignment=True))
    t = time.perf_counter(); report = psi.psi_execute(cfg, lctx); dt = time.perf_counter() - t
    lctx.stop_link()
    if rank == 0: print(f"{proto} {dt:.3f} {report.intersection_count}", flush=True)
if __name__ == "__main__":
    a, b, out = sys.argv[1:4]
    for i, proto in enumerate(("PROTOCOL_ECDH", "PROTOCOL_RR22")):
        port = 41000 + 10 * i
        ps = [mp.Process(target=party, args=(r, proto, a, b, out, port)) for r in (0, 1)]
        [p.start() for p in ps]; [p.join(600) for p in ps]
"""


def _spu(tmp: Path, server_items: list[str], client_items: list[str]) -> None:
    for line in _spu_rows(tmp, server_items, client_items):
        emit(line)


def _spu_rows(tmp: Path, server_items: list[str], client_items: list[str]) -> list[str]:
    venv = Path("/tmp/spu-venv")
    py = venv / "bin" / "python"
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        if subprocess.run([str(py), "-c", "import spu.psi"], capture_output=True).returncode != 0:
            r = subprocess.run([str(py), "-m", "pip", "install", "-q", "spu"], capture_output=True, text=True)
            if r.returncode != 0:
                return [f"SPU skipped: `pip install spu` failed: {(r.stderr or r.stdout).strip()[-400:]}"]
        a, b = tmp / "spu-a.csv", tmp / "spu-b.csv"
        a.write_text("id\n" + "\n".join(client_items) + "\n")
        b.write_text("id\n" + "\n".join(server_items) + "\n")
        script = tmp / "spu_bench.py"
        script.write_text(SPU_SCRIPT)
        r = subprocess.run([str(py), str(script), str(a), str(b), str(tmp / "spu-out")], capture_output=True,
                           text=True, timeout=1800)  # fmt: skip
        lines = [ln for ln in r.stdout.splitlines() if ln.split(" ")[0] in ("PROTOCOL_ECDH", "PROTOCOL_RR22")]
        if not lines:
            return [f"SPU skipped: the SPU run failed: {(r.stderr or r.stdout).strip()[-600:]}"]
        rows = [ln.split() for ln in lines]
        return [
            f"  SPU {p:<14} (2 parties, loopback)  {float(t):7.2f} s  size {int(n):,}" for p, t, n in rows
        ]
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"SPU skipped: {exc}"]


def _raw_cohort(server_items: list[str], client_items: list[str], fpr: float) -> dict[str, float]:
    import private_set_intersection.python as psi

    from psi_service.structures import choose_structure

    ds = choose_structure(fpr, len(server_items), len(client_items))
    kind = psi.DataStructure.GCS if ds == "gcs" else psi.DataStructure.BLOOM_FILTER
    lab, op = psi.client.CreateWithNewKey(True), psi.server.CreateWithNewKey(True)
    t0 = time.perf_counter()
    request = lab.CreateRequest(server_items)
    t1 = time.perf_counter()
    setup = op.CreateSetupMessage(fpr, len(server_items), client_items, kind)
    response = op.ProcessRequest(request)
    t2 = time.perf_counter()
    got = lab.GetIntersection(setup, response)
    t3 = time.perf_counter()
    return {"request": t1 - t0, "answer": t2 - t1, "match": t3 - t2, "total": t3 - t0, "size": len(got)}


def _cohort(c: Any, server_items: list[str], client_items: list[str], fpr: float, repeat: int) -> None:
    raw = _raw_cohort(server_items, client_items, fpr)
    best = float("inf")
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        co = c.psi.intersect(
            client_items, dataset="enterprise_registry", column="uscc", mode="cohort", progress=False
        )
        best = min(best, time.perf_counter() - t)
    phases = " + ".join(f"{p} {raw[p]:.2f}" for p in ("request", "answer", "match"))
    emit(f"  cohort       endpoint (with DLEQ proof)  {best:7.2f} s  noisy size {co.noisy_size:,} "
         f"(true {int(raw['size']):,}) = {best / raw['total']:.2f}x raw")  # fmt: skip
    emit(f"  cohort       raw library (1 process)     {raw['total']:7.2f} s  = {phases}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", type=int, default=100_000)
    ap.add_argument("--server", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2, help="timed endpoint requests per mode (best kept)")
    ap.add_argument("--spu", action="store_true", help="also run SecretFlow SPU in /tmp/spu-venv")
    ap.add_argument("--only", choices=["setup", "requests", "cohort"], help="run only one part")
    args = ap.parse_args()
    parts = {args.only} if args.only else {"setup", "requests", "cohort"}
    if args.spu:
        parts.add("spu")

    import pyarrow.parquet as pq

    from lab.catalog.policy import load_policy
    from lab.catalog.service import CatalogImporter
    from lab.client import connect
    from lab.db.migrate import upgrade
    from lab.runtime import Runtime
    from lab.sample.generate import generate
    from lab.settings import HubSettings, PsiSettings, S3Settings, Settings
    from lab.storage.seaweed import start_seaweed
    from psi_service import parallel
    from psi_service.keys import KeyRing
    from psi_service.setups import SetupCache
    from psi_service.structures import choose_structure, size_bucket
    from tests.factories import active_project

    tmp = Path(tempfile.mkdtemp(prefix="bench-psi-"))
    cores = Settings().psi.effective_workers  # LAB_PSI__WORKERS (or LAB_PSI_WORKERS) if set
    emit(f"PSI bench: {args.client:,} client × {args.server:,} server items, {cores} cores, tmp {tmp}")
    seaweed = start_seaweed(tmp / "s3", "bench", secrets.token_urlsafe(16))
    hub, token = _hub(tmp)
    try:
        settings = Settings(  # type: ignore[call-arg]
            data_dir=tmp,
            database_url=f"sqlite:///{tmp / 'lab.sqlite'}",
            secret_key=secrets.token_urlsafe(32),
            s3=S3Settings(
                endpoint=seaweed.endpoint, access_key=seaweed.access_key, secret_key=seaweed.secret_key
            ),  # type: ignore[call-arg,arg-type]
            hub=HubSettings(  # type: ignore[call-arg]
                api_url=hub.api_url,
                api_token=hub.service_token,  # type: ignore[arg-type]
                public_url=hub.public_url,
                token_cache_seconds=300,
            ),
        )
        upgrade(settings.db_url)
        rt = Runtime(settings)
        rt.store.ensure_buckets()
        server, url = _serve(rt)
        generate(args.server * 10, tmp / "sample", datasets=["enterprise_registry"])
        policy = load_policy(tmp / "sample" / "policies" / "enterprise_registry.yaml")
        with rt.transaction() as s:
            version = CatalogImporter(s, rt.store, rt.ledger(s)).import_file(
                tmp / "sample" / "enterprise_registry.parquet", policy, "bench"
            )
        server_items = sorted(
            set(pq.read_table(tmp / "sample" / "enterprise_registry.parquet").column("uscc").to_pylist())
        )
        client_items = _client_items(server_items, args.client, random.Random(1))
        dp = {"epsilon": "50", "delta": "0.00001", "epsilon_per_query": "1"}
        modes = ["intersection", "cardinality", "cohort"]
        pid = active_project(rt, {"enterprise_registry": {"psi": {"modes": modes, "quota": 1000}, "dp": dp}})
        fpr = settings.psi.fpr
        bucket = size_bucket(args.client)
        ds = choose_structure(fpr, bucket, len(server_items))
        emit(f"server set {len(server_items):,} distinct USCCs; bucket {bucket:,}; FPR {fpr:g}; {ds}")

        # -- first-time setup: 1 worker, then all cores (fresh epochs) -----------------------------
        setups = {}
        for workers in (1, cores) if "setup" in parts else ():
            ring = KeyRing(rt)
            ring.rotate("bench")
            cache = SetupCache(rt, PsiSettings(workers=workers), ring)
            parallel.run_chunked(
                parallel.encrypt_server_chunk,
                ["warm"] * 8,
                b"\x01" * 32,
                workers=workers,
                min_items=1,
                timeout=60,
            )  # fmt: skip - start the pool outside the timing
            load, cpu0 = os.getloadavg()[0], _cpu_seconds()
            t = time.perf_counter()
            enc = cache.encrypted_set(version, "uscc", ring.active())
            t_enc = time.perf_counter() - t
            art = cache.setup(version, "uscc", ring.active(), bucket)
            setups[workers] = total = time.perf_counter() - t
            cpu = _cpu_seconds() - cpu0
            assert enc.server_size == len(server_items)
            emit(
                f"  setup, ours, {workers} worker(s): encrypt {t_enc:7.1f} s + pack = {total:7.1f} s "
                f"({art.stored.size:,} B); CPU {cpu:.1f} s = {cpu / total:.2f} cores busy; load {load:.1f}"
            )
        if setups:
            emit(f"  setup speed-up {cores} cores vs 1: {setups[1] / setups[cores]:.2f}x  (target >= 1.7x)")

        if "cohort" in parts:
            _cohort(connect(url, token, timeout=3600).use(pid), server_items, client_items, fpr, args.repeat)

        # -- raw library, same process --------------------------------------------------------------
        if "requests" not in parts:
            if "spu" in parts:
                _spu(tmp, server_items, client_items)
            return
        raw = _raw(server_items, client_items, fpr, bucket, ds)
        emit(f"  setup, raw CreateSetupMessage (1 call, 1 core): {raw['setup']:7.1f} s")

        # -- endpoint -------------------------------------------------------------------------------
        c = connect(url, token, timeout=3600).use(pid)
        # warm-up (untimed): the client downloads and caches the setup, the server's pool is up
        c.psi.intersect(
            client_items, dataset="enterprise_registry", column="uscc", mode="cardinality", progress=False
        )
        for label, server_workers in ((f"{cores} workers", 0), ("1 worker", 1)):
            rt.settings.psi.workers = server_workers  # the in-process server reads it per request
            for mode in ("cardinality", "intersection"):
                best = float("inf")
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    r = c.psi.intersect(
                        client_items, dataset="enterprise_registry", column="uscc", mode=mode, progress=False
                    )
                    best = min(best, time.perf_counter() - t)
                size = r.size
                assert size == raw[f"{mode}:size"], (size, raw[f"{mode}:size"])
                ratio = best / raw[f"{mode}:total"]
                emit(
                    f"  {mode:12} endpoint (server {label:9}) {best:7.2f} s  size {size:,} = {ratio:.2f}x raw"
                )
        for mode in ("cardinality", "intersection"):
            phases = " + ".join(f"{p} {raw[f'{mode}:{p}']:.2f}" for p in ("request", "response", "match"))
            emit(f"  {mode:12} raw library (1 process)   {raw[f'{mode}:total']:7.2f} s  = {phases}")
        emit("  targets: endpoint <= 1.2x raw request+response phases; setup >= 1.7x faster on 2 cores")
        if "spu" in parts:
            _spu(tmp, server_items, client_items)
        server.should_exit = True
        rt.close()
    finally:
        hub.stop()
        seaweed.stop()
        parallel.reset_pool()


if __name__ == "__main__":
    main()
