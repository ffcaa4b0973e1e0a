"""Channel requests and grants: validated against dataset policies, reduced by reviewers, intersected.

Pure functions (no I/O). The normalized shape, per dataset, is the one ``GrantRow.limits`` stores
and :func:`lab.projects.access.authorize` reads — decimals as exact strings, lists sorted::

    {"dp":  {"epsilon": "1", "delta": "0", "epsilon_per_query": "0.5", "delta_per_query": "0"},
     "psi": {"modes": ["cohort"], "columns": ["resident_id"], "quota": 10},
     "he":  {"models": [], "tables": ["income_by_town"], "record_quota": 10000}}

An application may omit ``delta`` (0), the per-query caps (the policy's, at most the project's ε/δ),
PSI ``columns`` (every policy column that opens one of the requested modes), PSI ``quota``
(the policy's daily quota) and HE ``record_quota`` (the policy's). Anything above a policy cap is
refused with an :class:`InvalidProject` naming the dataset, channel, field and cap:

>>> from lab.catalog.policy import load_policy
>>> pol = {"population": load_policy("policies/population.yaml")}
>>> try:
...     normalize({"population": {"dp": {"epsilon": 9}}}, pol)
... except InvalidProject as exc:
...     print(exc.detail)
population.dp.epsilon: requested 9 exceeds the policy cap epsilon_per_project=5
>>> normalize({"population": {"dp": {"epsilon": "1.5"}}}, pol)["population"]["dp"]
{'epsilon': '1.5', 'delta': '0', 'epsilon_per_query': '1', 'delta_per_query': '0'}
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from lab.budgets import Budget
from lab.catalog.policy import Policy
from lab.decimals import plain
from lab.projects.errors import InvalidProject

Grants = dict[str, dict[str, dict[str, Any]]]

CHANNELS = ("dp", "psi", "he")
FIELDS: dict[str, tuple[str, ...]] = {
    "dp": ("epsilon", "delta", "epsilon_per_query", "delta_per_query"),
    "psi": ("modes", "columns", "quota"),
    "he": ("models", "tables", "record_quota"),
}
MAX_LIST = 64
#: Most decimal places of a granted ε/δ (a float's shortest repr fits): with at most 7 integer digits,
#: totals, spends and what remains stay exact in Decimal's 28 digits and fit the 40-character columns.
PLACES = 20


def _where(ds: str, ch: str, field: str) -> str:
    return f"{ds}.{ch}.{field}"


def _dec(ds: str, ch: str, field: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise InvalidProject(
            f"{_where(ds, ch, field)}: expected a number", dataset=ds, channel=ch, field=field
        )
    try:
        d = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise InvalidProject(
            f"{_where(ds, ch, field)}: {value!r} is not a number", dataset=ds, channel=ch, field=field
        ) from None
    if not d.is_finite() or d < 0:
        raise InvalidProject(
            f"{_where(ds, ch, field)}: must be a finite, non-negative number",
            dataset=ds,
            channel=ch,
            field=field,
        )
    if d != 0 and (d.adjusted() > 6 or d.quantize(Decimal(1).scaleb(-PLACES)) != d):
        raise InvalidProject(
            f"{_where(ds, ch, field)}: at most {PLACES} decimal places and 7 integer digits",
            dataset=ds,
            channel=ch,
            field=field,
        )
    return d


def _int(ds: str, ch: str, field: str, value: Any) -> int:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 12):  # "²" is a digit, not a number
        raise InvalidProject(
            f"{_where(ds, ch, field)}: expected a positive integer (at most 12 digits)",
            dataset=ds,
            channel=ch,
            field=field,
        )
    n = int(text)
    if n < 1:
        raise InvalidProject(
            f"{_where(ds, ch, field)}: must be at least 1", dataset=ds, channel=ch, field=field
        )
    return n


def _names(ds: str, ch: str, field: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidProject(
            f"{_where(ds, ch, field)}: expected a list of names", dataset=ds, channel=ch, field=field
        )
    if len(value) > MAX_LIST:
        raise InvalidProject(
            f"{_where(ds, ch, field)}: at most {MAX_LIST} names", dataset=ds, channel=ch, field=field
        )
    return sorted(set(value))


def _cap(ds: str, ch: str, field: str, value: Decimal | int, cap: Decimal | int, cap_name: str) -> None:
    if value > cap:
        shown_v = plain(value) if isinstance(value, Decimal) else str(value)
        shown_c = plain(cap) if isinstance(cap, Decimal) else str(cap)
        raise InvalidProject(
            f"{_where(ds, ch, field)}: requested {shown_v} exceeds the policy cap {cap_name}={shown_c}",
            dataset=ds,
            channel=ch,
            field=field,
            requested=shown_v,
            cap=shown_c,
            cap_name=cap_name,
        )


def _dp(ds: str, req: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    dp = policy.channels.dp
    assert dp is not None
    if "epsilon" not in req:
        raise InvalidProject(f"{ds}.dp.epsilon: required", dataset=ds, channel="dp", field="epsilon")
    eps = _dec(ds, "dp", "epsilon", req["epsilon"])
    if eps == 0:
        raise InvalidProject(f"{ds}.dp.epsilon: must be positive", dataset=ds, channel="dp", field="epsilon")
    delta = _dec(ds, "dp", "delta", req.get("delta", 0))
    _cap(ds, "dp", "epsilon", eps, dp.epsilon_per_project, "epsilon_per_project")
    _cap(ds, "dp", "delta", delta, dp.delta_per_project, "delta_per_project")
    epq = _dec(ds, "dp", "epsilon_per_query", req.get("epsilon_per_query", min(dp.epsilon_per_query, eps)))
    dpq = _dec(ds, "dp", "delta_per_query", req.get("delta_per_query", min(dp.delta_per_query, delta)))
    if epq == 0:
        raise InvalidProject(
            f"{ds}.dp.epsilon_per_query: must be positive",
            dataset=ds,
            channel="dp",
            field="epsilon_per_query",
        )
    _cap(ds, "dp", "epsilon_per_query", epq, dp.epsilon_per_query, "epsilon_per_query")
    _cap(ds, "dp", "delta_per_query", dpq, dp.delta_per_query, "delta_per_query")
    for field, per_query, total in (("epsilon_per_query", epq, eps), ("delta_per_query", dpq, delta)):
        if per_query > total:
            raise InvalidProject(
                f"{ds}.dp.{field}: {plain(per_query)} exceeds the project's own total {plain(total)}",
                dataset=ds,
                channel="dp",
                field=field,
            )
    return {
        "epsilon": plain(eps),
        "delta": plain(delta),
        "epsilon_per_query": plain(epq),
        "delta_per_query": plain(dpq),
    }


def _psi(ds: str, req: Mapping[str, Any], policy: Policy, strict: bool) -> dict[str, Any]:
    psi = policy.channels.psi
    assert psi is not None
    modes = _names(ds, "psi", "modes", req.get("modes", []))
    if not modes:
        raise InvalidProject(
            f"{ds}.psi.modes: name at least one mode", dataset=ds, channel="psi", field="modes"
        )
    opened = {c: {m.value for m in spec.modes} for c, spec in psi.columns.items()}
    for m in modes:
        if m not in ("intersection", "cardinality", "cohort"):
            raise InvalidProject(
                f"{ds}.psi.modes: unknown mode {m!r} (intersection, cardinality, cohort)",
                dataset=ds,
                channel="psi",
                field="modes",
            )
        if m in ("intersection", "cardinality") and not policy.is_open:
            raise InvalidProject(
                f"{ds}.psi.modes: {m} reveals membership (cardinality too, to a modified client) and is "
                "closed on non-open data; request cohort mode and DP",
                dataset=ds,
                channel="psi",
                field="modes",
            )
    explicit = "columns" in req and req["columns"] is not None
    columns = _names(ds, "psi", "columns", req["columns"]) if explicit else sorted(opened)
    for c in columns:
        if c not in opened:
            raise InvalidProject(
                f"{ds}.psi.columns: column {c!r} is not open to PSI (open: {', '.join(sorted(opened))})",
                dataset=ds,
                channel="psi",
                field="columns",
            )
    useful = [c for c in columns if opened[c] & set(modes)]
    if strict and explicit and len(useful) < len(columns):
        bad = sorted(set(columns) - set(useful))
        raise InvalidProject(
            f"{ds}.psi.columns: {', '.join(bad)} opens none of the requested modes",
            dataset=ds,
            channel="psi",
            field="columns",
        )
    for m in modes:
        if not any(m in opened[c] for c in useful):
            allowed = "; ".join(f"{c}: {', '.join(sorted(opened[c]))}" for c in sorted(opened))
            raise InvalidProject(
                f"{ds}.psi.modes: the policy does not open mode {m!r} on the requested columns ({allowed})",
                dataset=ds,
                channel="psi",
                field="modes",
            )
    quota = _int(ds, "psi", "quota", req.get("quota", psi.daily_quota))
    _cap(ds, "psi", "quota", quota, psi.daily_quota, "daily_quota")
    return {"modes": modes, "columns": useful, "quota": quota}


def _he(ds: str, req: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    he = policy.channels.he
    assert he is not None
    out: dict[str, Any] = {}
    for field, allowed in (("models", he.models), ("tables", he.tables)):
        names = _names(ds, "he", field, req.get(field, []))
        extra = sorted(set(names) - set(allowed))
        if extra:
            raise InvalidProject(
                f"{ds}.he.{field}: {', '.join(extra)} not cleared by the policy "
                f"(cleared: {', '.join(allowed) or 'none'})",
                dataset=ds,
                channel="he",
                field=field,
            )
        out[field] = names
    quota = _int(ds, "he", "record_quota", req.get("record_quota", he.record_quota))
    _cap(ds, "he", "record_quota", quota, he.record_quota, "record_quota")
    out["record_quota"] = quota
    return out


def normalize(datasets: Mapping[str, Any], policies: Mapping[str, Policy], *, strict: bool = True) -> Grants:
    """Validate channel requests against each dataset's policy; return them normalized.

    ``policies`` must hold every dataset named (the caller resolves them, refusing unknown ones).
    """
    out: Grants = {}
    for ds, channels in datasets.items():
        policy = policies[ds]
        if not isinstance(channels, Mapping) or not channels:
            raise InvalidProject(f"{ds}: name at least one channel (dp, psi, he)", dataset=ds)
        out[ds] = {}
        for ch, req in channels.items():
            if ch not in CHANNELS:
                raise InvalidProject(
                    f"{ds}: unknown channel {ch!r} (dp, psi, he)", dataset=ds, channel=str(ch)
                )
            if getattr(policy.channels, ch) is None:
                raise InvalidProject(
                    f"{ds}: the dataset's policy does not open the {ch} channel", dataset=ds, channel=ch
                )
            req = {} if req is None else req
            if not isinstance(req, Mapping):
                raise InvalidProject(f"{ds}.{ch}: expected a mapping of limits", dataset=ds, channel=ch)
            unknown = sorted(set(req) - set(FIELDS[ch]))
            if unknown:
                raise InvalidProject(
                    f"{ds}.{ch}: unknown field {unknown[0]!r} (fields: {', '.join(FIELDS[ch])})",
                    dataset=ds,
                    channel=ch,
                    field=str(unknown[0]),
                )
            if ch == "dp":
                out[ds][ch] = _dp(ds, req, policy)
            elif ch == "psi":
                out[ds][ch] = _psi(ds, req, policy, strict)
            else:
                out[ds][ch] = _he(ds, req, policy)
    return out


def reduce(requested: Grants, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Apply a reviewer's reductions to the request (before :func:`normalize` and :func:`check_within`).

    ``overrides`` maps dataset -> ``None`` (drop the dataset) or channel -> ``None`` (drop the channel)
    or a partial mapping of fields (replacing those fields). Lowering a DP total also lowers the
    per-query caps that would exceed it.
    """
    out: dict[str, Any] = copy.deepcopy(requested)
    for ds, channels in (overrides or {}).items():
        if ds not in requested:
            raise InvalidProject(
                f"{ds}: not requested; a grant may only reduce the request", dataset=ds, field="grants"
            )
        if channels is None:
            del out[ds]
            continue
        if not isinstance(channels, Mapping):
            raise InvalidProject(f"{ds}: expected channel -> limits (or null to drop)", dataset=ds)
        for ch, fields in channels.items():
            if ch not in requested[ds]:
                raise InvalidProject(
                    f"{ds}.{ch}: not requested; a grant may only reduce the request",
                    dataset=ds,
                    channel=str(ch),
                )
            if fields is None:
                del out[ds][ch]
                continue
            if not isinstance(fields, Mapping):
                raise InvalidProject(f"{ds}.{ch}: expected a mapping of limits", dataset=ds, channel=ch)
            merged = {**out[ds][ch], **fields}
            if ch == "dp":
                for total, per_query in (("epsilon", "epsilon_per_query"), ("delta", "delta_per_query")):
                    if total in fields and per_query not in fields:
                        new = _dec(ds, ch, total, fields[total])
                        merged[per_query] = plain(min(Decimal(str(merged[per_query])), new))
            out[ds][ch] = merged
        if not out[ds]:
            del out[ds]
    return out


def check_within(granted: Grants, requested: Grants) -> None:
    """Refuse a grant that is larger than the request in any dataset, channel or field."""
    for ds, channels in granted.items():
        for ch, g in channels.items():
            r = requested.get(ds, {}).get(ch)
            if r is None:
                raise InvalidProject(f"{ds}.{ch}: not requested", dataset=ds, channel=ch)
            for field in FIELDS[ch]:
                gv, rv = g[field], r[field]
                larger = (
                    not set(gv) <= set(rv) if isinstance(gv, list) else (Decimal(str(gv)) > Decimal(str(rv)))
                )
                if larger:
                    raise InvalidProject(
                        f"{ds}.{ch}.{field}: {gv} is larger than the requested {rv}; "
                        "a grant is never larger than the request",
                        dataset=ds,
                        channel=ch,
                        field=field,
                    )


def meet(a: Grants, b: Grants) -> Grants:
    """The grant both ``a`` and ``b`` allow (the smaller of each limit); used to combine approvals."""
    out: Grants = {}
    for ds in sorted(a.keys() & b.keys()):
        channels: dict[str, dict[str, Any]] = {}
        for ch in sorted(a[ds].keys() & b[ds].keys()):
            x, y = a[ds][ch], b[ds][ch]
            v: dict[str, Any] = {}
            for field in FIELDS[ch]:
                if isinstance(x[field], list):
                    v[field] = sorted(set(x[field]) & set(y[field]))
                elif isinstance(x[field], int):
                    v[field] = min(x[field], y[field])
                else:
                    v[field] = plain(min(Decimal(x[field]), Decimal(y[field])))
            if ch == "psi" and not (v["modes"] and v["columns"]):
                continue
            channels[ch] = v
        if channels:
            out[ds] = channels
    return out


def budgets(grants: Grants) -> dict[str, Budget]:
    """The privacy budget each DP grant carries."""
    return {ds: Budget.of(ch["dp"]["epsilon"], ch["dp"]["delta"]) for ds, ch in grants.items() if "dp" in ch}
