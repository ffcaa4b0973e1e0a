"""Synthetic residents of Chongming: the ``population`` and ``health_visits`` datasets.

Every attribute of resident ``i`` (``0 <= i < scale``) is a pure function of ``(seed, i)``;
``health_visits`` recomputes the residents it samples instead of reading the population back.

Resident IDs are unique by construction, not by rejection: a keyed permutation sends ``i`` to a
slot ``j``; slots are laid out day by day over the birth-date distribution (``day_start``), so
``j`` gives the birth date and the rank of the person among those born that day; a per-day
bijection of ``0..999`` turns the rank into the sequence code. Two residents born on the same
day therefore never share a sequence code, whatever the division code. The 17th digit's parity
gives the gender (odd: 男). Phones are unique the same way (a second permutation onto
(prefix, subscriber) pairs).

Realism (illustrative, not statistics): an aged island population (about a third over 60),
division 310151 (a few pre-2016 births keep 310230, the former Chongming County), education
by birth cohort, income rising with education and peaking in mid-career, pensions after 60,
visits and chronic illness rising with age.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from lab.catalog.policy import Policy
from lab.sample import _tables as t
from lab.sample._random import I64, Permutation, Streams, as_u64, categorical_by_group, derive_key

REFERENCE_DATE = date(2026, 1, 1)
SEQ_PER_DAY = 1000
HEALTH_SHARE = 0.6
# Relative population by five-year age group 0-4, 5-9, …, 105-109 (an aged rural district).
_AGE_GROUP_WEIGHTS = (
    2.5, 3.0, 3.5, 3.5, 4.0, 4.5, 6.0, 6.5, 6.0, 6.5, 8.0,
    9.5, 9.0, 9.5, 8.0, 5.0, 3.0, 1.8, 0.8, 0.25, 0.04, 0.005,
)  # fmt: skip
# Approximate relative sizes of the towns; towns not listed get the median weight.
TOWN_WEIGHTS = {
    "城桥镇": 11.0, "堡镇": 5.0, "新河镇": 4.0, "庙镇": 3.5, "竖新镇": 3.5, "向化镇": 2.5,
    "三星镇": 2.5, "港沿镇": 3.0, "中兴镇": 3.0, "陈家镇": 6.0, "绿华镇": 0.8, "港西镇": 2.5,
    "建设镇": 2.5, "新海镇": 1.0, "东平镇": 1.5, "长兴镇": 6.0, "新村乡": 0.6, "横沙乡": 3.0,
}  # fmt: skip
_MOBILE_PREFIXES = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 153, 155, 156, 157, 158,
    159, 166, 173, 176, 177, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 198, 199,
)  # fmt: skip
# Education (ordinal domain, lowest first) by age group: <=12, 13-15, 16-18, 19-29, 30-44, 45-59, 60-74, 75+.
_EDU_AGE_EDGES = np.array([13, 16, 19, 30, 45, 60, 75])
_EDU_TABLE = np.array([
    [1.00, 0.00, 0.00, 0.00, 0.00],
    [0.25, 0.75, 0.00, 0.00, 0.00],
    [0.02, 0.30, 0.68, 0.00, 0.00],
    [0.02, 0.15, 0.25, 0.25, 0.33],
    [0.03, 0.25, 0.25, 0.20, 0.27],
    [0.10, 0.45, 0.28, 0.10, 0.07],
    [0.35, 0.42, 0.17, 0.04, 0.02],
    [0.70, 0.20, 0.07, 0.02, 0.01],
])  # fmt: skip
_WAGE_BY_EDUCATION = np.array([4200.0, 5200.0, 6500.0, 8500.0, 12500.0])
# Household size 1..10 for children, adults, and people over 70.
_HOUSEHOLD_TABLE = np.array([
    [0.00, 0.04, 0.40, 0.30, 0.15, 0.08, 0.02, 0.006, 0.003, 0.001],
    [0.14, 0.30, 0.24, 0.14, 0.10, 0.05, 0.015, 0.007, 0.002, 0.001],
    [0.25, 0.46, 0.11, 0.07, 0.06, 0.03, 0.015, 0.004, 0.001, 0.0],
])  # fmt: skip


@dataclass(frozen=True)
class People:
    """Core attributes of a batch of residents (the ones other datasets need)."""

    index: I64
    resident_id: pa.StringArray
    birth: npt.NDArray[np.datetime64]
    age: I64
    male: npt.NDArray[np.bool_]
    town: I64


class PeopleModel:
    """Deterministic synthetic residents for one (scale, seed)."""

    def __init__(self, scale: int, seed: int, population: Policy, health: Policy | None = None) -> None:
        self.scale, self.population, self.health = scale, population, health
        self.rng = Streams(seed)
        self.schema = t.arrow_schema(population)
        self.id_width = max(8, len(str(scale - 1)))
        t.require(population, "gender", "男", "女")
        self.genders = t.domain(population, "gender")
        self.towns = t.domain(population, "town")
        if health is not None and t.domain(health, "town") != self.towns:
            raise ValueError("population.town and health_visits.town must declare the same domain")
        self.town_weights = t.weights_for(
            self.towns, TOWN_WEIGHTS, float(np.median(list(TOWN_WEIGHTS.values())))
        )
        self.education = t.domain(population, "education")
        t.positional(self.education, tuple(_EDU_TABLE[0]), "education")
        self.income_bounds = t.bounds(population, "monthly_income")
        self.household_bounds = t.bounds(population, "household_size")
        if self.household_bounds != (1.0, float(_HOUSEHOLD_TABLE.shape[1])):
            raise ValueError("household_size bounds changed; update the table in lab/sample/_people.py")
        self._birth_days(int(t.bounds(population, "age")[1]))
        self._by_birth = Permutation(scale, derive_key(seed, "population.birth-slot"))
        self._by_phone = Permutation(scale, derive_key(seed, "population.phone-slot"))
        self._phone_a = derive_key(seed, "phone.a") % 10**8 | 1
        self._phone_a += 2 if self._phone_a % 5 == 0 else 0
        self._phone_b = derive_key(seed, "phone.b") % 10**8

    def _birth_days(self, max_age: int) -> None:
        ref = np.datetime64(REFERENCE_DATE.isoformat(), "D")
        first = np.datetime64(f"{REFERENCE_DATE.year - max_age - 1}-01-02", "D")
        days = np.arange(first, ref, dtype="datetime64[D]")
        years = days.astype("datetime64[Y]").astype(np.int64) + 1970
        after_jan1 = days != days.astype("datetime64[Y]").astype("datetime64[D]")
        age = REFERENCE_DATE.year - years - after_jan1.astype(np.int64)
        groups = np.asarray(_AGE_GROUP_WEIGHTS)
        per_age = groups[np.minimum(np.arange(max_age + 1) // 5, groups.size - 1)]
        per_day = per_age[age] / np.bincount(age, minlength=max_age + 1)[age]
        cdf = np.concatenate([[0.0], np.cumsum(per_day)]) / per_day.sum()
        start = np.floor(cdf * self.scale).astype(np.int64)
        start[-1] = self.scale
        busiest = int(np.diff(start).max())
        if busiest > SEQ_PER_DAY:
            raise ValueError(
                f"scale {self.scale:,} puts {busiest} residents on one birth date; resident IDs allow "
                f"{SEQ_PER_DAY} per date (keep scale below about {self.scale * SEQ_PER_DAY // busiest:,})"
            )
        months = days.astype("datetime64[M]")
        month_no = months.astype(np.int64) % 12 + 1
        day_no = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
        self.days, self.day_age, self.day_start = days, age, start
        self.day_digits = t.digits(years * 10000 + month_no * 100 + day_no, 8)
        units = np.array([a for a in range(SEQ_PER_DAY) if a % 2 and a % 5], dtype=np.int64)
        day_index = as_u64(np.arange(days.size))
        self.day_seq_a = units[self.rng.integers("rid.seq-a", day_index, units.size)]
        self.day_seq_b = self.rng.integers("rid.seq-b", day_index, SEQ_PER_DAY)

    def core(self, index: I64) -> People:
        """Resident ID, birth date, age, gender and town of residents ``index``."""
        slot = self._by_birth(index)
        day = np.searchsorted(self.day_start, slot, side="right") - 1
        rank = slot - self.day_start[day]
        seq = (self.day_seq_a[day] * rank + self.day_seq_b[day]) % SEQ_PER_DAY
        u = as_u64(index)
        old_code = (self.days[day] < np.datetime64("2016-01-01")) & (
            self.rng.uniform("rid.old-code", u) < 0.04
        )
        chars = np.empty((index.size, 18), dtype=np.uint8)
        chars[:, :6] = np.where(old_code[:, None], t.digits([310230], 6), t.digits([310151], 6))
        chars[:, 6:14] = self.day_digits[day]
        chars[:, 14:17] = t.digits(seq, 3)
        weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
        total = (chars[:, :17].astype(np.int64) - 48) @ weights
        chars[:, 17] = np.frombuffer(b"10X98765432", dtype=np.uint8)[total % 11]
        return People(
            index=index,
            resident_id=t.ascii_column(chars),
            birth=self.days[day],
            age=self.day_age[day],
            male=seq % 2 == 1,
            town=self.rng.choice("town", u, self.town_weights),
        )

    def person_ids(self, index: I64) -> pa.StringArray:
        return t.prefixed_ids("P", index, self.id_width)

    def phones(self, index: I64) -> pa.StringArray:
        slot = self._by_phone(index)
        k = len(_MOBILE_PREFIXES)
        subscriber = (self._phone_a * (slot // k) + self._phone_b) % 10**8
        chars = np.hstack([t.digits(np.asarray(_MOBILE_PREFIXES)[slot % k], 3), t.digits(subscriber, 8)])
        return t.ascii_column(chars)

    def population_chunk(self, start: int, stop: int) -> pa.Table:
        """Rows ``start..stop-1`` of ``population``."""
        index = np.arange(start, stop, dtype=np.int64)
        p, u = self.core(index), as_u64(index)
        edu = categorical_by_group(
            self.rng.uniform("education", u), np.searchsorted(_EDU_AGE_EDGES, p.age, side="right"), _EDU_TABLE
        )
        age = p.age
        p_work = np.select(
            [age < 16, age < 19, age < 23, age < 60, age < 65, age < 70],
            [0.0, 0.05, 0.35, 0.78 + 0.03 * edu, 0.30, 0.15],
            0.04,
        )
        employed = (self.rng.uniform("employed", u) < p_work).astype(np.int64)
        career = np.select([age < 25, age < 35, age < 50, age < 60], [0.8, 1.0, 1.15, 1.05], 0.9)
        z = self.rng.normal("income", u)
        wage = _WAGE_BY_EDUCATION[edu] * career * np.exp(0.45 * z - 0.1)
        pension = (1800.0 + 500.0 * edu) * np.exp(0.35 * z)
        transfer = np.where(self.rng.uniform("transfer", u) < 0.3, 900.0 * np.exp(0.3 * z), 0.0)
        income = np.where(
            employed == 1, wage, np.where(age >= 60, pension, np.where(age < 16, 0.0, transfer))
        )
        household_group = np.where(age < 18, 0, np.where(age < 70, 1, 2))
        household = 1 + categorical_by_group(
            self.rng.uniform("household", u), household_group, _HOUSEHOLD_TABLE
        )
        return t.make_table(
            self.schema,
            {
                "person_id": self.person_ids(index),
                "resident_id": p.resident_id,
                "phone": self.phones(index),
                "gender": t.from_domain(self.genders, np.where(p.male, 0, 1)),
                "birth_date": t.date_column(p.birth),
                "age": p.age,
                "town": t.from_domain(self.towns, p.town),
                "education": t.from_domain(self.education, edu),
                "household_size": household,
                "monthly_income": t.clip_round(income, self.income_bounds, 2),
                "employed": employed,
            },
        )

    def health_chunk(self, start: int, stop: int) -> pa.Table:
        """``health_visits`` rows of the sampled residents among ``start..stop-1`` (1-3 years each)."""
        if self.health is None:
            raise ValueError("PeopleModel was built without the health_visits policy")
        h = self.health
        year_names = t.domain(h, "year")
        years = np.array([int(y) for y in year_names], dtype=np.int64)
        if (np.diff(years) <= 0).any():
            raise ValueError("health_visits.year domain must list years in increasing order")
        bands = t.domain(h, "age_band")
        index = np.arange(start, stop, dtype=np.int64)
        index = index[self.rng.uniform("health.sampled", as_u64(index)) < HEALTH_SHARE]
        p, u = self.core(index), as_u64(index)
        n_years = 1 + self.rng.integers("health.years", u, min(3, years.size))
        # Row r of person k covers year years[-n_years[k] + r]; residents born later are skipped.
        person = np.repeat(np.arange(index.size), n_years)
        offset = np.arange(person.size) - np.repeat(np.cumsum(n_years) - n_years, n_years)
        ypos = years.size - n_years[person] + offset
        age_y = p.age[person] - (REFERENCE_DATE.year - 1 - years[ypos])
        keep = p.birth.astype("datetime64[Y]").astype(np.int64)[person] + 1970 <= years[ypos]
        person, ypos, age_y = person[keep], ypos[keep], age_y[keep]
        row = as_u64(index[person] * 8 + ypos)
        p_chronic = 1.0 / (1.0 + np.exp(-(age_y - 62.0) / 9.0)) * 0.7
        chronic = (self.rng.uniform("health.chronic", u)[person] < p_chronic).astype(np.int64)
        mean = 1.5 + 0.06 * age_y + 5.0 * chronic + np.where(age_y < 6, 3.0, 0.0)
        visits = t.clip_int(
            mean * np.exp(0.6 * self.rng.normal("health.visits", row) - 0.18), t.bounds(h, "visits")
        )
        per_visit = (220.0 + 180.0 * chronic) * np.exp(0.5 * self.rng.normal("health.cost", row))
        stay = np.where(
            self.rng.uniform("health.inpatient", row) < 0.02 + 0.08 * chronic,
            15000.0 * np.exp(0.6 * self.rng.normal("health.stay", row)),
            0.0,
        )
        return t.make_table(
            t.arrow_schema(h),
            {
                "person_id": self.person_ids(index[person]),
                "resident_id": p.resident_id.take(pa.array(person)),
                "year": t.from_domain(year_names, ypos),
                "town": t.from_domain(self.towns, p.town[person]),
                "age_band": t.from_domain(bands, age_band_index(bands, age_y)),
                "visits": visits,
                "cost": t.clip_round(visits * per_visit + stay, t.bounds(h, "cost"), 2),
                "chronic": chronic,
            },
        )


def age_band_index(bands: tuple[str, ...], age: I64) -> I64:
    """Position of each age in a domain of bands written ``lo-hi`` or ``lo+``.

    >>> age_band_index(("0-17", "18-39", "40+"), np.array([0, 17, 18, 95])).tolist()
    [0, 0, 1, 2]
    """
    lows = np.array([int(b.rstrip("+").split("-")[0]) for b in bands], dtype=np.int64)
    if lows[0] != 0 or (np.diff(lows) <= 0).any():
        raise ValueError(f"age bands {bands} are not increasing from 0")
    return (np.searchsorted(lows, age, side="right") - 1).astype(np.int64)
