"""Synthetic ``environment_monitoring``: two stations per town, one row per station and day.

The period is the last ``days`` days ending 2025-12-31. PM2.5 and NO2 follow a winter-high
seasonal curve with per-station levels and log-normal daily noise; the water quality grade
(ordinal domain, best first) is mostly II-III with a per-station baseline. Every value is a
pure function of ``(seed, station, day)``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lab.catalog.policy import Policy
from lab.sample import _tables as t
from lab.sample._random import Streams, as_u64, categorical

LAST_DAY = np.datetime64("2025-12-31", "D")
STATIONS_PER_TOWN = 2
_WATER_WEIGHTS = (0.08, 0.42, 0.38, 0.10, 0.02)


def monitoring_days(scale: int) -> int:
    """Days of readings for a catalog of ``scale`` residents: between 30 and 365."""
    return min(365, max(30, scale // 1000))


def environment_table(policy: Policy, scale: int, seed: int) -> pa.Table:
    """The whole ``environment_monitoring`` dataset (small: at most 365 rows per station)."""
    rng = Streams(seed)
    towns = t.domain(policy, "town")
    grades = t.domain(policy, "water_grade")
    water_weights = t.positional(grades, _WATER_WEIGHTS, "water_grade")
    n_days = monitoring_days(scale)
    stations = np.arange(len(towns) * STATIONS_PER_TOWN, dtype=np.int64)
    days = LAST_DAY - np.arange(n_days - 1, -1, -1).astype("timedelta64[D]")
    station = np.repeat(stations, n_days)
    day = np.tile(days, stations.size)
    s, row = as_u64(stations), as_u64(station * 1000 + np.tile(np.arange(n_days), stations.size))
    day_of_year = (day - day.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64)
    winter = np.cos(2.0 * np.pi * (day_of_year - 15) / 365.25)
    pm_level = 24.0 * np.exp(0.15 * rng.normal("env.pm-station", s))[station]
    pm25 = pm_level * (1.0 + 0.45 * winter) * np.exp(0.45 * rng.normal("env.pm", row) - 0.1)
    no2_level = 17.0 * np.exp(0.2 * rng.normal("env.no2-station", s))[station]
    no2 = no2_level * (1.0 + 0.3 * winter) * np.exp(0.35 * rng.normal("env.no2", row) - 0.06)
    base_grade = categorical(rng.uniform("env.water-station", s), water_weights)[station]
    shift = np.select(
        [rng.uniform("env.water", row) < 0.1, rng.uniform("env.water", row) > 0.92], [-1, 1], 0
    ).astype(np.int64)
    water = np.clip(base_grade + shift, 0, len(grades) - 1)
    codes = [
        f"CM{1 + i // STATIONS_PER_TOWN:02d}{chr(65 + i % STATIONS_PER_TOWN)}" for i in stations.tolist()
    ]
    return t.make_table(
        t.arrow_schema(policy),
        {
            "station_id": pa.array(codes, pa.string()).take(pa.array(station)),
            "town": t.from_domain(towns, station // STATIONS_PER_TOWN),
            "date": t.date_column(day),
            "pm25": t.clip_round(pm25, t.bounds(policy, "pm25"), 1),
            "no2": t.clip_round(no2, t.bounds(policy, "no2"), 1),
            "water_grade": t.from_domain(grades, water),
        },
    )
