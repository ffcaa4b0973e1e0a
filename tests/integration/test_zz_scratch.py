from __future__ import annotations
import json, time
from typing import Any
import pytest
from tests.conftest import HubHandle
from tests.factories import active_project
from tests.integration._dp import dp_grant, import_dp_sample
from lab.runtime import Runtime

def H(t): return {"Authorization": f"token {t}"}

@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_scratch(api: Any, hub: HubHandle, runtime: Runtime) -> None:
    import_dp_sample(runtime)
    pid = active_project(runtime, {"population": {"dp": dp_grant(epsilon="10", per_query="5")}}, members=["alice"])
    a = H(hub.token_for("alice", ["operator"])); b = H(hub.token_for("bob", ["operator"])); bu = H(hub.token_for("bureau1", ["bureau"]))
    def q(body, h=a, path="query"):
        t=time.time()
        try:
            r = api.post(f"/api/v1/projects/{pid}/dp/{path}", json=body, headers=h)
        except Exception as e:
            print("EXC", type(e).__name__, str(e)[:200]); return None
        print(r.status_code, f"{time.time()-t:.2f}s", r.headers.get("content-type"), r.text[:250].replace("\n"," "))
        return r
    base = {"dataset": "population", "select": [{"agg": "count"}]}
    print("--- tiny eps")
    q({**base, "epsilon": "0." + "0"*998 + "1"})
    q({**base, "epsilon": "1e-30"})
    q({**base, "epsilon": "1e-320"})
    q({**base, "epsilon": "0.3333333333333333333333333333333333333333"})
    q({**base, "epsilon": "1" + "0"*999})
    q({**base, "epsilon": "-1"})
    print("--- raw NaN")
    for v in ("NaN", "Infinity", "-Infinity", "1e999"):
        r = api.post(f"/api/v1/projects/{pid}/dp/query", content=('{"dataset":"population","select":[{"agg":"count"}],"epsilon":%s}' % v).encode(), headers={**a, "content-type": "application/json"})
        print(v, r.status_code, r.text[:200])
    print("--- nested")
    r = api.post(f"/api/v1/projects/{pid}/dp/query", content=b'{"dataset":"population","select":' + b"["*100000 + b"]"*100000 + b',"epsilon":1}', headers={**a, "content-type": "application/json"})
    print(r.status_code, r.headers.get("content-type"), r.text[:200])
    print("--- outside domain / filters")
    q({**base, "epsilon": "0.1", "where": [{"column": "age", "value": 500}]})
    q({**base, "epsilon": "0.1", "where": [{"column": "age", "op": "between", "value": [-100, 1000]}]})
    q({**base, "epsilon": "0.1", "where": [{"column": "birth_date", "value": "1800-01-01"}]})
    q({**base, "epsilon": "0.1", "where": [{"column": "birth_date", "value": "x"*100000}]})
    q({**base, "epsilon": "0.1", "where": [{"column": "person_id", "value": "abc"}]})
    q({**base, "epsilon": "0.1", "where": [{"column": "resident_id", "value": "abc"}]})
    q({**base, "epsilon": "0.1", "group_by": ["resident_id"]})
    q({**base, "epsilon": "0.1", "group_by": ["person_id"]})
    q({"dataset": "population", "select": [{"agg": "histogram", "column": "phone"}], "epsilon": "0.1"})
    q({"dataset": "population", "select": [{"agg": "mean", "column": "resident_id"}], "epsilon": "0.1"})
    print("--- heavy")
    q({"dataset": "population", "group_by": ["town", "education"], "epsilon": "1", "select": [{"agg": "quantile", "column": "age", "name": f"q{i}", "quantiles": [round(0.05*k,2) for k in range(1,20)]} for i in range(11)]}, path="preview")
    q({"dataset": "population", "group_by": ["town", "education"], "epsilon": "1", "select": [{"agg": "quantile", "column": "age", "name": f"q{i}", "quantiles": [round(0.05*k,2) for k in range(1,20)]} for i in range(11)]})
    print("--- degenerate values")
    q({"dataset": "population", "where": [{"column": "age", "value": 3}, {"column": "employed", "value": 1}], "group_by": ["town","education","gender"], "epsilon": "0.01", "select": [{"agg": "stddev", "column": "monthly_income"}, {"agg": "variance", "column": "age", "name": "v"}, {"agg": "mean", "column": "age", "name": "m"}, {"agg": "quantile", "column": "monthly_income", "quantiles": ["0.01", "0.99"]}]})
    print("--- train")
    q({"dataset": "population", "model": "linear", "features": ["age"], "target": "monthly_income", "epsilon": "0.001"}, path="train")
    q({"dataset": "population", "model": "gaussian_nb", "features": ["age", "monthly_income"], "target": "employed", "epsilon": "0.0000001", "where": [{"column": "age", "value": 200}]}, path="train")
    q({"dataset": "population", "model": "logistic", "features": ["age"], "target": "employed", "epsilon": "0.01", "where": [{"column": "age", "value": 3}]}, path="train")
    q({"dataset": "population", "statistic": {"agg": "mean", "column": "age"}, "dims": ["town"], "epsilon": "0.0000000001"}, path="tables")
    print("--- budget", api.get(f"/api/v1/projects/{pid}/budget", headers=a).json()["budgets"])
    print("--- non-member")
    for path in ("query", "preview", "tables", "train"):
        q({**base, "epsilon": "0.1"}, h=b, path=path)
    q({**base, "epsilon": "0.1"}, h=bu, path="query")
    for url in (f"/api/v1/projects/{pid}", f"/api/v1/projects/{pid}/budget", f"/api/v1/projects/{pid}/dp/tables", f"/api/v1/projects/{pid}/dp/models", f"/api/v1/records?project={pid}", f"/api/v1/products?project={pid}"):
        r = api.get(url, headers=b); print(url, r.status_code, r.text[:200])
    r = api.post(f"/api/v1/projects/{pid}/check", json={"dataset": "population", "channel": "dp", "params": {"epsilon": "0.1"}}, headers=b); print("check", r.status_code, r.text[:200])
    print("--- NUL")
    for url in ("/api/v1/projects/p%00x", "/api/v1/catalog/pop%00", "/api/v1/records/dr_%00", "/api/v1/products/x%00", "/api/v1/registry/C%00", f"/api/v1/records?caller=a%00b", f"/api/v1/products?status=a%00", f"/api/v1/audit/requests?user=a%00"):
        r = api.get(url, headers=bu); print(url, r.status_code, r.text[:150])
    r = api.post(f"/api/v1/projects/p%00/dp/query", json={**base, "epsilon": "0.1"}, headers=a); print("dp nul", r.status_code, r.text[:150])
    app_body = {"title": "t\u0000itle", "purpose": "purpose long enough", "scenario": "sce", "organization": "org", "contact": "c@x.y", "datasets": {"population": {"dp": {"epsilon": "1"}}}, "days": 30, "commitment": "我方承诺遵守数据安全规定"}
    r = api.post("/api/v1/projects", json=app_body, headers=a); print("apply nul", r.status_code, r.text[:200])
    r = api.post(f"/api/v1/projects/{pid}/suspend", json={"reason": "x\u0000y"}, headers=bu); print("suspend nul", r.status_code, r.text[:200])
    r = api.get(f"/api/v1/projects/{pid}", headers=a); print(r.json()["status"])
