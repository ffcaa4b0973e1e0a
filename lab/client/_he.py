"""``client.he``: encrypted scoring and lookups — the data is encrypted here and decrypted here.

The CKKS keys are generated in this process; the lab receives the *public* context only
(relinearization keys, no secret key, no Galois keys) and ciphertexts, and returns ciphertexts
that only this process can decrypt. Encryption uses the secret key (symmetric CKKS: three times
faster than public-key encryption, and the lab holds no key that can encrypt either).

Typical use in a notebook::

    c.use(project_id)
    ctx = c.he.context("ckks-8192")                  # keys stay here; registered with the project
    s = c.he.score(df, model="credit_score_v1")      # a Series aligned with df.index
    s.attrs["record_id"], s.attrs["quota"]
    p = c.he.score(df, model="default_risk", context=c.he.context("ckks-8192-deep"))  # logistic
    p.attrs["approximation"]["max_error"]            # sigmoid approximation error on the model's range
    v = c.he.lookup(people[["town"]], table="income_by_town")

Records are packed column-wise: one ciphertext per feature (or category) holds up to
``slots`` records (4096 for ``ckks-8192``), so a call costs ciphertexts, not records. Features
are clipped to the model's bounds before encryption (the model was trained on clipped values).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import math
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lab.client._encrypt import Encryptors
from lab.client._wire import serialize
from lab.shared import frames

if TYPE_CHECKING:
    import tenseal as ts

    from lab.client._client import Client

FRAME = "application/vnd.lab.he-frame"
#: Largest result ciphertext the client accepts (a ckks-16384 ciphertext is about 1.6 MB).
MAX_RESULT_BLOB = 64 << 20


class HeContext:
    """A CKKS context whose secret key never leaves this machine.

    Calls of more than one batch are encrypted in ``processes`` local processes (default: the CPU
    count, at most 4; see :mod:`lab.client._encrypt`); the secret context is handed to them once,
    through a socket pair. ``processes=1`` encrypts in this process.
    """

    def __init__(self, param_set: str, ctx: ts.Context, processes: int | None = None) -> None:
        self.param_set = param_set
        self.ctx = ctx
        self.public = ctx.serialize(save_secret_key=False, save_galois_keys=False, save_relin_keys=True)
        self.sha256 = hashlib.sha256(self.public).hexdigest()
        self.registered: dict[str, str] = {}  # project -> context id
        self.processes = processes if processes is not None else min(4, os.cpu_count() or 1)
        self._pool: Encryptors | None = None

    def _encryptors(self) -> Encryptors:
        if self._pool is None:
            secret = self.ctx.serialize(save_secret_key=True, save_galois_keys=False, save_relin_keys=False)
            self._pool = Encryptors(secret, self.processes)
            weakref.finalize(self, self._pool.close)
        return self._pool

    def close(self) -> None:
        """Stop the encryption processes (they start again when needed)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @property
    def slots(self) -> int:
        return int(self.ctx.seal_context().data.first_context_data().parms().poly_modulus_degree()) // 2

    def encrypt(self, values: np.ndarray) -> bytes:
        import tenseal as ts

        return serialize(ts.ckks_vector(self.ctx, values))

    def encrypt_batches(
        self, columns: list[np.ndarray], n: int, batches: range | None = None
    ) -> Iterator[list[bytes]]:
        """Column-packed batches of ``slots`` records, in order (one ciphertext per column)."""
        slots = self.slots
        which = iter(batches if batches is not None else range(math.ceil(n / slots)))

        def cut(b: int) -> list[np.ndarray]:
            rows = slice(b * slots, min(n, (b + 1) * slots))
            return [np.ascontiguousarray(col[rows], dtype=float) for col in columns]

        if self.processes < 2 or (batches is not None and len(batches) < 2) or n <= slots:
            for b in which:
                yield [self.encrypt(c) for c in cut(b)]
            return
        pool = self._encryptors()
        ahead = collections.deque(pool.submit(cut(b)) for b in itertools.islice(which, 2 * self.processes))
        while ahead:
            done = ahead.popleft().result()
            nxt = next(which, None)
            if nxt is not None:
                ahead.append(pool.submit(cut(nxt)))
            yield done

    def decrypt(self, blob: bytes) -> np.ndarray:
        import tenseal as ts

        return np.asarray(ts.ckks_vector_from(self.ctx, blob).decrypt(), dtype=float)

    def __repr__(self) -> str:
        return f"HeContext({self.param_set!r}, sha256 {self.sha256[:12]}…, projects {list(self.registered)})"


def make_context(
    param_set: str, poly_modulus_degree: int, coeff_mod_bit_sizes: Sequence[int], scale_bits: int
) -> HeContext:
    """A fresh context with secret and relinearization keys (symmetric encryption)."""
    import tenseal as ts

    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree,
        coeff_mod_bit_sizes=list(coeff_mod_bit_sizes),
        encryption_type=ts.ENCRYPTION_TYPE.SYMMETRIC,
    )
    ctx.global_scale = 2.0**scale_bits
    return HeContext(param_set, ctx)


def _path(project: str, tail: str) -> str:
    """A project's HE route (parameter sets and bureau publication are under ``/api/v1/he``)."""
    return f"/api/v1/projects/{project}/he/{tail}"


def _unframe(data: bytes, sent: int) -> tuple[dict[str, Any], list[bytes]]:
    """The lab's answer: at most as many ciphertexts as were sent, each of bounded size."""
    try:
        return frames.decode(data, max_blobs=max(sent, 1), max_blob_bytes=MAX_RESULT_BLOB)
    except frames.FrameError as exc:
        raise ValueError(f"the lab did not answer with a valid HE frame: {exc}") from None


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ct", disable=not enabled or total < 8, leave=False)


class HeAPI:
    """Homomorphic encryption channel (see the module docstring)."""

    def __init__(self, client: Client) -> None:
        self._c = client
        self._t = client.transport
        self._contexts: dict[str, HeContext] = {}
        self._params: dict[str, dict[str, Any]] | None = None
        self.current: HeContext | None = None

    # -- parameters and contexts -------------------------------------------------------------
    def params(self) -> pd.DataFrame:
        """The lab-approved CKKS parameter sets."""
        return pd.DataFrame(self._t.get("/api/v1/he/params")).set_index("name")

    def _sets(self) -> dict[str, dict[str, Any]]:
        if self._params is None:
            self._params = {p["name"]: p for p in self._t.get("/api/v1/he/params")}
        return self._params

    def _get(self, param_set: str) -> HeContext:
        if param_set not in self._contexts:
            sets = self._sets()
            if param_set not in sets:
                raise ValueError(f"unknown parameter set {param_set!r}; approved: {', '.join(sets)}")
            p = sets[param_set]
            self._contexts[param_set] = make_context(
                param_set, p["poly_modulus_degree"], p["coeff_mod_bit_sizes"], p["scale_bits"]
            )
        return self._contexts[param_set]

    def context(self, param_set: str = "ckks-8192", *, project: str | None = None) -> HeContext:
        """This session's context of ``param_set`` (created once, keys stay here) — now the default.

        It is registered (public part only) with ``project`` or the client's current project.
        """
        ctx = self._get(param_set)
        chosen = project or self._c.project
        if chosen:
            self._register(ctx, chosen)
        self.current = ctx
        return ctx

    def _pick(self, context: HeContext | None, levels: int) -> HeContext:
        """The given context, else the current one if deep enough, else the smallest deep-enough set."""
        if context is not None:
            return context
        sets = self._sets()
        if self.current is not None and sets[self.current.param_set]["levels"] >= levels:
            return self.current
        fitting = [p for p in sets.values() if p["levels"] >= levels]
        if not fitting:
            raise ValueError(f"no approved parameter set has {levels} levels")
        return self._get(min(fitting, key=lambda p: (p["poly_modulus_degree"], p["levels"]))["name"])

    def _register(self, ctx: HeContext, project: str) -> str:
        if project not in ctx.registered:
            info = self._t.post(
                _path(project, "contexts"),
                params={"param_set": ctx.param_set},
                content=ctx.public,
                headers={"content-type": "application/octet-stream"},
            )
            ctx.registered[project] = info["id"]
        return ctx.registered[project]

    def contexts(self, project: str | None = None) -> pd.DataFrame:
        """Your registered contexts in a project (public parts; the lab holds nothing else)."""
        rows = self._t.get(_path(self._c.require_project(project), "contexts"))
        return pd.DataFrame(rows)

    def _listing(self, kind: str, project: str | None) -> pd.DataFrame:
        chosen = project or self._c.project
        return pd.DataFrame(self._t.get(_path(chosen, kind) if chosen else f"/api/v1/he/{kind}"))

    def models(self, project: str | None = None) -> pd.DataFrame:
        """Models the project may score with (names, features, bounds; weights of those it may use);
        without a project (the bureau, auditors), every model."""
        return self._listing("models", project)

    def tables(self, project: str | None = None) -> pd.DataFrame:
        """Statistics tables the project may look up in (dimensions; values of those it may use);
        without a project (the bureau, auditors), every table."""
        return self._listing("tables", project)

    def _material(self, kind: str, ref: str, project: str) -> dict[str, Any]:
        rows = self._t.get(_path(project, f"{kind}s"))
        by_id = [r for r in rows if r["id"] == ref]
        named = [r for r in rows if r["name"] == ref]
        own = [r for r in named if r["project"] == project]
        newest = sorted(named, key=lambda r: r["created_at"], reverse=True)
        found = by_id or own or newest
        if not found:
            raise ValueError(f"no {kind} {ref!r} is available to project {project}")
        return dict(found[0])

    # -- operations ----------------------------------------------------------------------------
    def score(
        self,
        df: pd.DataFrame,
        model: str,
        *,
        project: str | None = None,
        context: HeContext | None = None,
        degree: int | None = None,
        output: str = "probability",
        progress: bool = True,
    ) -> pd.Series:
        """Score ``df``'s rows with a server-side model, encrypted end to end; a Series on ``df.index``.

        Linear models return ``w·x + b``; logistic models the probability of ``classes[1]`` through
        a polynomial sigmoid (``attrs["approximation"]`` states its degree and max error on the
        model's input range; values are clipped to [0, 1]) or, with ``output="logit"``, ``w·x + b``.
        """
        project = self._c.require_project(project)
        info = self._material("model", model, project)
        if len(df) == 0:
            return pd.Series([], index=df.index, name=info["name"], dtype=float)
        deep = info["kind"] == "logistic" and output == "probability"
        context = self._pick(context, 3 if deep else 1)
        features = list(info["features"])
        missing = [f for f in features if f not in df.columns]
        if missing:
            raise ValueError(f"the frame lacks the model's features {missing}")
        x = df[features].to_numpy(dtype=float)
        if np.isnan(x).any():
            raise ValueError("features contain missing values; impute them before scoring")
        bounds = [info["bounds"].get(f) for f in features]
        if all(b is not None for b in bounds):
            lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
            clipped = int(((x < lo) | (x > hi)).any(axis=1).sum())
            if clipped:
                warnings.warn(
                    f"{clipped} records had features outside the model's bounds; clipped", stacklevel=2
                )
            x = np.clip(x, lo, hi)
        spec = {"model": info["id"], "records": len(x), "output": output}
        if degree is not None:
            spec["degree"] = degree
        columns = [x[:, j] for j in range(x.shape[1])]
        header, values = self._call("score", project, spec, context, columns, progress)
        if header.get("output") == "probability":
            values = np.clip(values, 0.0, 1.0)
        out = pd.Series(values, index=df.index, name=info["name"])
        out.attrs.update(header)
        return out

    def lookup(
        self,
        categories: pd.DataFrame | pd.Series,
        table: str,
        *,
        project: str | None = None,
        context: HeContext | None = None,
        progress: bool = True,
    ) -> pd.Series:
        """Look each row's categories up in a server-side table, encrypted end to end.

        ``categories`` has one column per table dimension (a Series for a 1-D table). Rows whose
        category is outside the table's domain, or whose cell was suppressed, come back NaN.
        """
        project = self._c.require_project(project)
        info = self._material("table", table, project)
        frame = categories.to_frame() if isinstance(categories, pd.Series) else categories
        if len(frame) == 0:
            return pd.Series([], index=frame.index, name=info["name"], dtype=float)
        dims = info["dims"]
        context = self._pick(context, len(dims))
        columns, known = [], np.ones(len(frame), dtype=bool)
        cell = np.zeros(len(frame), dtype=np.int64)
        for d in dims:
            col = d["column"] if d["column"] in frame.columns else None
            if col is None:
                raise ValueError(f"the frame lacks the table's dimension {d['column']!r}")
            values = frame[col].astype(object).to_numpy()
            index = {v: i for i, v in enumerate(d["domain"])}
            codes = np.array([index.get(v, -1) for v in values], dtype=np.int64)
            known &= codes >= 0
            cell = cell * len(d["domain"]) + np.maximum(codes, 0)
            columns += [(codes == k).astype(float) for k in range(len(d["domain"]))]
        spec = {"table": info["id"], "records": len(frame)}
        header, values = self._call("lookup", project, spec, context, columns, progress)
        values = values * float(header.get("scale", 1.0))
        values[~known] = np.nan
        values[np.isin(cell, header.get("missing_cells") or [])] = np.nan
        out = pd.Series(values, index=frame.index, name=info["name"])
        out.attrs.update(header)
        return out

    def _call(
        self,
        op: str,
        project: str,
        spec: dict[str, Any],
        context: HeContext,
        columns: list[np.ndarray],
        progress: bool,
    ) -> tuple[dict[str, Any], np.ndarray]:
        """One call in ``project`` (the path names it; ``spec`` does not): a single request if its
        ciphertexts fit one body, else a multi-part call."""
        spec = {**spec, "context": self._register(context, project)}
        plan = self._t.post(_path(project, f"plan/{op}"), json=spec)  # refusals before any encryption
        n, slots, width = spec["records"], context.slots, len(columns)
        batches = math.ceil(n / slots)
        if plan["batches"] != batches or plan["ciphertexts_per_batch"] != width:
            raise ValueError("the lab's plan does not match this context's layout")
        part_batches = int(plan.get("part_batches") or batches)
        with _progress(batches * width, f"encrypting {n} records", progress) as bar:

            def blobs(which: range) -> Iterator[bytes]:
                for batch in context.encrypt_batches(columns, n, which):
                    for blob in batch:
                        yield blob
                        bar.update(1)

            if part_batches >= batches:
                r = self._t.request(
                    "POST",
                    _path(project, op),
                    content=frames.stream(spec, batches * width, blobs(range(batches))),
                    headers={"content-type": FRAME},
                )
                header, results = _unframe(r.content, batches * width)
            else:
                header, results = self._parts(_path(project, "calls"), op, spec, batches * width, blobs)
        values = np.concatenate([context.decrypt(b) for b in results]) if results else np.empty(0)
        return header, values[:n]

    def _parts(
        self,
        calls: str,
        op: str,
        spec: dict[str, Any],
        count: int,
        blobs: Callable[[range], Iterator[bytes]],
    ) -> tuple[dict[str, Any], list[bytes]]:
        """A multi-part call under ``calls`` (the project's): open, send the parts (two in flight: one
        encrypts while the lab finishes the other), commit once. A failing part raises its problem
        (with ``part``) and abandons the call: nothing is charged."""
        call = self._t.post(f"{calls}/{op}", json=spec)
        cid, parts, per = call["call"], int(call["parts"]), int(call["part_batches"])
        width, batches = count // call["batches"], int(call["batches"])
        encrypting = threading.Lock()  # parts are encrypted one after the other, in order

        def ordered(which: range) -> Iterator[bytes]:
            with encrypting:
                yield from blobs(which)

        def send(k: int) -> None:
            which = range(k * per, min((k + 1) * per, batches))
            self._t.request(
                "PUT",
                f"{calls}/{cid}/parts/{k}",
                content=frames.stream({"call": cid, "part": k}, len(which) * width, ordered(which)),
                headers={"content-type": FRAME},
            )

        try:
            pool = ThreadPoolExecutor(2, thread_name_prefix="lab-he-part")
            try:
                for future in [pool.submit(send, k) for k in range(parts)]:
                    future.result()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            r = self._t.request("POST", f"{calls}/{cid}/commit")
        except BaseException:
            with contextlib.suppress(Exception):
                self._t.request("DELETE", f"{calls}/{cid}")
            raise
        return _unframe(r.content, count)

    # -- bureau ------------------------------------------------------------------------------
    def publish_model(
        self,
        name: str,
        *,
        release: str,
        source: str | None = None,
        kind: str | None = None,
        dataset: str | None = None,
        features: list[str] | None = None,
        target: str | None = None,
        coef: Sequence[float] | None = None,
        intercept: float | None = None,
        classes: list[Any] | None = None,
        bounds: dict[str, list[float]] | None = None,
    ) -> dict[str, Any]:
        """Publish a linear or logistic model for every project's encrypted scoring (bureau).

        ``release="published"`` with the content: its weights are given to the operators of every
        project that may use it. ``release="dp"`` with ``source``: promote a project's DP model.
        """
        body: dict[str, Any] = {"name": name, "release": release}
        if source is not None:
            body["source"] = source
        if release == "published":
            body.update(kind=kind, dataset=dataset, features=features, target=target,
                        coef=[float(c) for c in coef or []], intercept=float(intercept or 0.0),
                        classes=classes, bounds=bounds)  # fmt: skip
        out: dict[str, Any] = self._t.post("/api/v1/he/models", json=body)
        return out

    def publish_table(
        self,
        name: str,
        *,
        release: str,
        source: str | None = None,
        dataset: str | None = None,
        dims: list[dict[str, Any]] | None = None,
        statistic: str | None = None,
        values: Sequence[float | None] | None = None,
    ) -> dict[str, Any]:
        """Publish a statistics table (row-major over the dims' domains) for encrypted lookups (bureau).

        ``release="published"`` with the content: its values are given to the operators of every
        project that may use it. ``release="dp"`` with ``source``: promote a project's DP table.
        """
        body: dict[str, Any] = {"name": name, "release": release}
        if source is not None:
            body["source"] = source
        if release == "published":
            body.update(dataset=dataset, dims=dims, statistic=statistic,
                        values=[None if v is None else float(v) for v in values or []])  # fmt: skip
        out: dict[str, Any] = self._t.post("/api/v1/he/tables", json=body)
        return out
