"""The session's shared Hub carries no roles from one test to the next: ``hub.token_for(name, groups)``
makes ``groups`` exactly the user's role groups, so the Hub-using tests pass in any order.

The second test replays an order that used to fail: the web test that makes alice a reviewer, then
the one that checks an operator may not verify the ledger (in a child pytest, file order kept).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from lab.identity import Role
from lab.runtime import Runtime
from tests.conftest import ROOT, HubHandle

pytestmark = [pytest.mark.integration, pytest.mark.hub]
WEB = "tests/integration/test_web_pages.py"


def test_token_for_sets_the_role_groups_exactly(hub: HubHandle, runtime: Runtime) -> None:
    runtime.settings.hub = hub.settings
    runtime._hub = None
    user, group = f"isolation-{uuid.uuid4().hex[:8]}", f"project-p{uuid.uuid4().hex[:8]}"  # shared Hub
    hub.token_for(user, ["operator", "bureau"])
    hub.http.post(f"groups/{group}").raise_for_status()  # a project group, as the lab syncs it
    hub.http.post(f"groups/{group}/users", json={"users": [user]}).raise_for_status()
    token = hub.token_for(user, ["operator"])
    assert runtime.hub.resolve(token).roles == frozenset({Role.operator})
    assert sorted(hub.groups_of(user)) == sorted(["operator", group])


def test_a_reviewer_role_given_by_one_test_does_not_reach_the_next() -> None:
    nodes = [
        f"{WEB}::test_applicant_cannot_review_and_auditor_sees_no_form",  # alice: operator + bureau
        f"{WEB}::test_operator_may_not_verify_the_ledger",  # alice: operator only
    ]
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-k",
            "sqlite",
            *nodes,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0 and "2 passed" in out.stdout, out.stdout[-3000:]
