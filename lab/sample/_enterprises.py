"""Synthetic enterprises: ``enterprise_registry``, ``tax_credit`` and ``social_insurance``.

Enterprise ``k`` is a pure function of ``(seed, k)``. Indexes ``0..n-1`` are the registry;
indexes ``n..`` are enterprises registered elsewhere that still pay tax or social insurance
in Chongming, so about 2% of the USCCs in ``tax_credit`` and ``social_insurance`` are not in
the registry and joins are not trivially complete.

USCCs are unique by construction: reg. authority 9 (market regulation), organization type 1
(enterprise; 3 for some farmers' cooperatives), division 310151 (a few pre-2016 enterprises
keep 310230), and a GB 11714 organization code whose last five body characters encode an
affine bijection of ``k`` modulo 31**5 (so at most 28,629,151 enterprises) behind an
era prefix (``MA1`` for registrations since 2015-10, a legacy-looking numeric prefix before).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lab.catalog.policy import Policy
from lab.identifiers import USCC_CHARSET
from lab.sample import _tables as t
from lab.sample._people import TOWN_WEIGHTS
from lab.sample._random import F64, I64, Streams, as_u64, derive_key, unit_mod

TAX_SHARE, INSURANCE_SHARE, EXTERNAL_SHARE = 0.7, 0.6, 0.02
MAX_ENTERPRISES = 31**5
_FIRST_DAY, _LAST_DAY = np.datetime64("1990-01-01", "D"), np.datetime64("2025-12-31", "D")
_MA_ERA = np.datetime64("2015-10-01", "D")
_INDUSTRY_WEIGHTS = {
    "农业": 8, "制造业": 10, "建筑业": 8, "批发零售": 28, "住宿餐饮": 6, "交通运输": 5,
    "信息技术": 9, "金融": 3, "房地产": 3, "旅游": 4, "其他": 16,
}  # fmt: skip
_MEDIAN_EMPLOYEES = {"制造业": 25.0, "建筑业": 15.0, "交通运输": 8.0, "住宿餐饮": 8.0, "旅游": 6.0}
_MEDIAN_WAGE_BASE = {"金融": 17000.0, "信息技术": 14000.0, "房地产": 11000.0, "制造业": 9000.0}
_DESCRIPTOR = {
    "农业": "生态农业", "制造业": "机械制造", "建筑业": "建设工程", "批发零售": "商贸",
    "住宿餐饮": "餐饮管理", "交通运输": "物流", "信息技术": "信息科技", "金融": "投资管理",
    "房地产": "置业", "旅游": "旅游发展", "其他": "企业管理咨询",
}  # fmt: skip
_TRADE_NAME_1 = tuple("瀛东岛沙绿华海鑫润丰禾源恒裕泰兴盛达嘉新明宏森鸿瑞祥和安江洲乐茂福康信诚")
_TRADE_NAME_2 = tuple("嘉盛源鑫达泰丰禾恒华澜晟耀辰宇航港岸湾帆林田谷稻橘蟹")
_LEGACY_PREFIXES = ("132", "134", "607", "631", "703", "747", "767", "781", "791", "798")
_GRADE_WEIGHTS = {"A": 0.32, "B": 0.46, "M": 0.0, "C": 0.15, "D": 0.07}
_QUARTER = re.compile(r"(\d{4})Q([1-4])")


@dataclass(frozen=True)
class Enterprises:
    """Core attributes of a batch of enterprises (the ones tax and insurance rows depend on)."""

    index: I64
    uscc: pa.StringArray
    cooperative: npt.NDArray[np.bool_]
    town: I64
    industry: I64
    established: npt.NDArray[np.datetime64]
    employees: I64
    size: F64


class EnterpriseModel:
    """Deterministic synthetic enterprises for one (scale, seed); ``n`` is the registry size."""

    def __init__(self, n: int, seed: int, registry: Policy, tax: Policy, insurance: Policy) -> None:
        self.n, self.registry, self.tax, self.insurance = n, registry, tax, insurance
        self.rng = Streams(seed)
        self.n_external_tax = max(1, round(n * TAX_SHARE * EXTERNAL_SHARE / (1 - EXTERNAL_SHARE)))
        self.n_external_insurance = max(1, round(n * INSURANCE_SHARE * EXTERNAL_SHARE / (1 - EXTERNAL_SHARE)))
        if n + max(self.n_external_tax, self.n_external_insurance) > MAX_ENTERPRISES:
            raise ValueError(f"at most {MAX_ENTERPRISES:,} enterprises fit the synthetic USCC space")
        self.width = max(8, len(str(n + max(self.n_external_tax, self.n_external_insurance))))
        self.towns = t.domain(registry, "town")
        if t.domain(insurance, "town") != self.towns:
            raise ValueError(
                "enterprise_registry.town and social_insurance.town must declare the same domain"
            )
        self.town_weights = t.weights_for(self.towns, TOWN_WEIGHTS, 2.5)
        self.industries = t.domain(registry, "industry")
        self.industry_weights = t.weights_for(self.industries, _INDUSTRY_WEIGHTS, 5.0)
        self.statuses = t.domain(registry, "status")
        t.require(registry, "status", "存续", "吊销", "注销")
        self._suffix_a = unit_mod(MAX_ENTERPRISES, derive_key(seed, "uscc.a"))
        self._suffix_b = derive_key(seed, "uscc.b") % MAX_ENTERPRISES
        charset = np.frombuffer(USCC_CHARSET.encode(), dtype=np.uint8)
        self._charset = charset
        self._value = np.zeros(256, dtype=np.int64)
        self._value[charset] = np.arange(charset.size)
        self._farm = self.industries.index("农业") if "农业" in self.industries else -1

    # --- core attributes ---------------------------------------------------------------

    def core(self, index: I64) -> Enterprises:
        u = as_u64(index)
        industry = self.rng.choice("ent.industry", u, self.industry_weights)
        span = float((_LAST_DAY - _FIRST_DAY).astype(np.int64))
        mean_age = 2500.0  # days; registrations are skewed towards recent years
        back = -mean_age * np.log1p(-self.rng.uniform("ent.established", u) * -np.expm1(-span / mean_age))
        established = _LAST_DAY - np.floor(back).astype("timedelta64[D]")
        size = self.rng.normal("ent.size", u)
        median = t.weights_for(self.industries, _MEDIAN_EMPLOYEES, 4.0)[industry]
        employees = t.clip_int(
            np.exp(np.log(median) + 1.2 * size) - 0.5, t.bounds(self.registry, "employees")
        )
        cooperative = (industry == self._farm) & (self.rng.uniform("ent.coop", u) < 0.35)
        return Enterprises(
            index=index,
            uscc=self._uscc(index, established, cooperative),
            cooperative=cooperative,
            town=self.rng.choice("ent.town", u, self.town_weights),
            industry=industry,
            established=established,
            employees=employees,
            size=size,
        )

    def _uscc(
        self, index: I64, established: npt.NDArray[np.datetime64], coop: npt.NDArray[np.bool_]
    ) -> pa.Array:
        rows = index.size
        u = as_u64(index)
        chars = np.empty((rows, 18), dtype=np.uint8)
        chars[:, 0] = ord("9")
        chars[:, 1] = np.where(coop, ord("3"), ord("1"))
        old_code = (established < np.datetime64("2016-01-01")) & (self.rng.uniform("uscc.old-code", u) < 0.05)
        chars[:, 2:8] = np.where(old_code[:, None], t.digits([310230], 6), t.digits([310151], 6))
        legacy = np.frombuffer("".join(_LEGACY_PREFIXES).encode(), dtype=np.uint8).reshape(-1, 3)
        prefix = legacy[self.rng.integers("uscc.legacy", u, legacy.shape[0])]
        chars[:, 8:11] = np.where((established >= _MA_ERA)[:, None], np.frombuffer(b"MA1", np.uint8), prefix)
        suffix = (self._suffix_a * index + self._suffix_b) % MAX_ENTERPRISES
        for k in range(15, 10, -1):
            chars[:, k] = self._charset[suffix % 31]
            suffix //= 31
        body = chars[:, 8:16].astype(np.int64)
        values = np.where(body <= ord("9"), body - 48, body - 55)
        check = 11 - (values @ np.array([3, 7, 9, 10, 5, 8, 4, 2])) % 11
        chars[:, 16] = np.frombuffer(b"0123456789X0", dtype=np.uint8)[check]
        weights = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
        total = self._value[chars[:, :17]] @ weights
        chars[:, 17] = self._charset[(31 - total % 31) % 31]
        return t.ascii_column(chars)

    # --- datasets ----------------------------------------------------------------------

    def registry_chunk(self, start: int, stop: int) -> pa.Table:
        """Rows ``start..stop-1`` of ``enterprise_registry``."""
        index = np.arange(start, stop, dtype=np.int64)
        e, u = self.core(index), as_u64(index)
        capital = np.exp(np.log(100.0) + 0.7 * e.size + 0.9 * self.rng.normal("ent.capital", u))
        age_years = (_LAST_DAY - e.established).astype(np.int64) / 365.25
        closed = np.minimum(0.35, 0.012 * age_years)
        revoked = np.minimum(0.15, 0.004 * age_years)
        roll = self.rng.uniform("ent.status", u)
        status = np.where(roll < revoked, "吊销", np.where(roll < revoked + closed, "注销", "存续"))
        n1, n2 = len(_TRADE_NAME_1), len(_TRADE_NAME_2)
        descriptor = [_DESCRIPTOR.get(name, "实业") for name in self.industries]
        names = pc.binary_join_element_wise(
            "上海崇明",
            t.from_domain(_TRADE_NAME_1, self.rng.integers("name.1", u, n1)),
            t.from_domain(_TRADE_NAME_2, self.rng.integers("name.2", u, n2)),
            t.from_domain(tuple(descriptor), e.industry),
            pa.array(np.where(e.cooperative, "专业合作社", "有限公司")),
            "",
        )
        return t.make_table(
            t.arrow_schema(self.registry),
            {
                "enterprise_id": t.prefixed_ids("E", index, self.width),
                "uscc": e.uscc,
                "name": names,
                "town": t.from_domain(self.towns, e.town),
                "industry": t.from_domain(self.industries, e.industry),
                "established": t.date_column(e.established),
                "registered_capital": t.clip_round(capital, t.bounds(self.registry, "registered_capital"), 2),
                "employees": e.employees,
                "status": pa.array(status, pa.string()),
            },
        )

    def tax_chunk(self, start: int, stop: int) -> pa.Table:
        """Tax rows of taxpayers ``start..stop-1`` among registry and external indexes."""
        index = np.arange(start, stop, dtype=np.int64)
        index = index[(index >= self.n) | (self.rng.uniform("tax.sampled", as_u64(index)) < TAX_SHARE)]
        e = self.core(index)
        year_names = t.domain(self.tax, "year")
        years = np.array([int(y) for y in year_names], dtype=np.int64)
        est_year = e.established.astype("datetime64[Y]").astype(np.int64) + 1970
        first = np.searchsorted(years, est_year, side="left")
        count = years.size - first
        who = np.repeat(np.arange(index.size), count)
        ypos = first[who] + np.arange(who.size) - np.repeat(np.cumsum(count) - count, count)
        row = as_u64(index[who] * 8 + ypos)
        grades = t.domain(self.tax, "grade")
        weights = t.weights_for(grades, _GRADE_WEIGHTS, 0.05)
        base = self.rng.choice("tax.grade", as_u64(index), weights)[who]
        drift = self.rng.uniform("tax.drift", row) < 0.2
        grade = np.where(drift, self.rng.choice("tax.regrade", row, weights), base)
        if "M" in grades:
            grade = np.where(years[ypos] == est_year[who], grades.index("M"), grade)
        factor = t.weights_for(grades, {"C": 0.6, "D": 0.3}, 1.0)[grade]
        paid = (
            0.8
            * (e.employees[who] + 0.5) ** 0.9
            * np.exp(
                0.9 * self.rng.normal("tax.level", as_u64(index))[who] + 0.3 * self.rng.normal("tax.y", row)
            )
            * 1.05 ** (years[ypos] - years[0])
            * factor
        )
        return t.make_table(
            t.arrow_schema(self.tax),
            {
                "taxpayer_id": t.prefixed_ids("T", index[who], self.width),
                "uscc": e.uscc.take(pa.array(who)),
                "year": t.from_domain(year_names, ypos),
                "grade": t.from_domain(grades, grade),
                "tax_paid": t.clip_round(paid, t.bounds(self.tax, "tax_paid"), 2),
            },
        )

    def insurance_chunk(self, start: int, stop: int) -> pa.Table:
        """Quarterly rows of employers ``start..stop-1`` among registry and external indexes."""
        index = np.arange(start, stop, dtype=np.int64)
        index = index[(index >= self.n) | (self.rng.uniform("si.sampled", as_u64(index)) < INSURANCE_SHARE)]
        e, u = self.core(index), as_u64(index)
        quarters = t.domain(self.insurance, "quarter")
        ends = np.array([_quarter_end(q) for q in quarters], dtype="datetime64[D]")
        active = e.established[:, None] <= ends[None, :]
        who, qpos = np.nonzero(active)
        row = as_u64(index[who] * 8 + qpos)
        insured = 0.6 + 0.4 * self.rng.uniform("si.share", u)[who]
        headcount = np.ceil(e.employees[who] * insured * np.exp(0.05 * self.rng.normal("si.q", row)))
        median = t.weights_for(self.industries, _MEDIAN_WAGE_BASE, 8000.0)[e.industry[who]]
        wage = median * np.exp(
            0.25 * self.rng.normal("si.wage", u)[who] + 0.04 * self.rng.normal("si.wq", row)
        )
        return t.make_table(
            t.arrow_schema(self.insurance),
            {
                "employer_id": t.prefixed_ids("S", index[who], self.width),
                "uscc": e.uscc.take(pa.array(who)),
                "quarter": t.from_domain(quarters, qpos),
                "town": t.from_domain(self.towns, e.town[who]),
                "headcount": t.clip_int(headcount, t.bounds(self.insurance, "headcount")),
                "avg_wage_base": t.clip_round(wage, t.bounds(self.insurance, "avg_wage_base"), 2),
            },
        )


def _quarter_end(quarter: str) -> np.datetime64:
    """Last day of a quarter written ``YYYYQn``.

    >>> str(_quarter_end("2025Q1"))
    '2025-03-31'
    """
    m = _QUARTER.fullmatch(quarter)
    if m is None:
        raise ValueError(f"quarter {quarter!r} is not written YYYYQn")
    first_of_next = np.datetime64(f"{m[1]}-01", "M") + np.timedelta64(3 * int(m[2]), "M")
    end: np.datetime64 = first_of_next.astype("datetime64[D]") - np.timedelta64(1, "D")
    return end
