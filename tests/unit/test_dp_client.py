"""The DP client's shorthands and result objects (no I/O: a recorded API body)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lab.client._dp import DpModel, DpResult, DpTable, _select, _where


def test_shorthands_become_spec_dicts_with_exact_numbers() -> None:
    assert _select("count") == {"agg": "count"}
    assert _select("histogram(education)") == {"agg": "histogram", "column": "education"}
    assert _select({"agg": "mean", "column": "age", "bounds": [0, 90.5], "epsilon": 0.1}) == {
        "agg": "mean",
        "column": "age",
        "bounds": ["0", "90.5"],
        "epsilon": "0.1",
    }
    assert _where({"town": ["a", "b"], "age": {">=": 18, "<": 65.5}}) == [
        {"column": "town", "op": "in", "value": ["a", "b"]},
        {"column": "age", "op": "ge", "value": "18"},
        {"column": "age", "op": "lt", "value": "65.5"},
    ]
    assert _where([{"column": "age", "op": "between", "value": (1, 2)}]) == [
        {"column": "age", "op": "between", "value": ["1", "2"]}
    ]


def _body() -> dict[str, Any]:
    rows = []
    for town in ("A", "B"):
        rows.append(
            {
                "group": [town],
                "name": "count",
                "agg": "count",
                "column": None,
                "key": None,
                "value": 10.0,
                "error_95": 3.0,
                "unit": "value",
                "mechanism": "Geometric",
                "flag": None,
            }
        )
        for q in ("0.5", "0.9"):
            rows.append(
                {
                    "group": [town],
                    "name": "quantile_age",
                    "agg": "quantile",
                    "column": "age",
                    "key": q,
                    "value": 40.0,
                    "error_95": 120.0,
                    "unit": "score",
                    "mechanism": "Exponential",
                    "flag": None,
                }
            )
    comp = {
        "quantity": "count",
        "mechanism": "Geometric",
        "epsilon": 0.5,
        "delta": 0.0,
        "sensitivity": 1,
        "scale": 2.0,
        "error_95": 3.0,
        "unit": "value",
    }
    return {
        "record_id": "dr_1",
        "dataset": "population",
        "version": 1,
        "group_by": ["town"],
        "cohort": None,
        "noise": "laplace",
        "epsilon": "1",
        "delta": "0",
        "confidence": 0.95,
        "cached": False,
        "epsilon_spent": "1",
        "delta_spent": "0",
        "remaining": {"epsilon": "2", "delta": "0"},
        "rows": rows,
        "aggregations": [{"name": "count", "agg": "count", "split": "all", "components": [comp]}],
        "repeat_policy": "replay",
    }


def test_result_frames_are_tidy_and_wide() -> None:
    r = DpResult.from_json(_body())
    assert r.epsilon_spent == 1.0 and r.remaining == {"epsilon": 2.0, "delta": 0.0} and not r.cached
    assert list(r.frame["town"]) == ["A", "A", "A", "B", "B", "B"]
    count = r.frame[r.frame["name"] == "count"].iloc[0]
    assert (count["lower"], count["upper"]) == (7.0, 13.0)
    assert np.isnan(r.frame[r.frame["agg"] == "quantile"]["lower"]).all()  # rank bounds are not value bounds
    wide = r.wide()
    assert list(wide.columns) == [
        "town",
        "count",
        "count_error_95",
        "quantile_age[0.5]",
        "quantile_age[0.5]_error_95",
        "quantile_age[0.9]",
        "quantile_age[0.9]_error_95",
    ]
    assert list(r.mechanisms["mechanism"]) == ["Geometric"] and "dr_1" in repr(r)


def test_models_score_locally_and_tables_unfold_their_dims() -> None:
    m = DpModel(
        {
            "id": "m_1",
            "kind": "logistic",
            "features": ["x", "y"],
            "target": "t",
            "classes": [0, 1],
            "coef": [1.0, -1.0],
            "intercept": 0.5,
            "record_id": "dr",
            "params": {"bounds": {"x": [0, 10], "y": [0, 10]}},
        }
    )
    df = pd.DataFrame({"x": [20.0, 0.0], "y": [0.0, 0.0]})
    assert list(m.decision_function(df)) == [10.5, 0.5]  # x clamped to its bound first
    assert m.predict_proba(df)[0] > 0.99
    t = DpTable(
        {
            "id": "t_1",
            "name": "n",
            "statistic": "count",
            "record_id": "dr",
            "values": [1, 2, 3, 4],
            "errors_95": [1, 1, 1, 1],
            "dims": [{"column": "a", "domain": ["x", "y"]}, {"column": "b", "domain": ["u", "v"]}],
        }
    )
    assert t.frame.values.tolist() == [["x", "u", 1, 1], ["x", "v", 2, 1], ["y", "u", 3, 1], ["y", "v", 4, 1]]
