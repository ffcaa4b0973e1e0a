"""One decision of who may read a project (``lab.projects.access``): overseers and members read it, the
applicant alone sees it but may not read its results, and anyone else gets the same ``ProjectNotFound``
for another project's id as for an id that does not exist."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from lab.db.base import make_engine, utcnow
from lab.db.migrate import upgrade
from lab.errors import Forbidden, ProjectNotFound
from lab.identity import Principal, Role
from lab.projects.access import may_read, member_projects, operated_project, readable_project
from lab.projects.models import ProjectMemberRow, ProjectRow


def _who(name: str, *roles: Role) -> Principal:
    return Principal(name, frozenset(roles))


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    upgrade(url)
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    now = utcnow()
    with Session(engine) as s:
        s.add(
            ProjectRow(
                id="p1",
                title="t",
                purpose="p",
                scenario="s",
                organization="o",
                contact="c",
                applicant="ann",
                status="active",
                requested_days=30,
                requested={},
                commitment="c",
                commitment_signed_by="ann",
                created_at=now,
                updated_at=now,
            )
        )
        s.flush()
        s.add_all(
            [
                ProjectMemberRow(project_id="p1", username="olga", added_at=now),
                ProjectMemberRow(project_id="p1", username="rex", added_at=now, removed_at=now),
            ]
        )
        s.commit()
        yield s
    engine.dispose()


def test_members_and_overseers_read_the_project(session: Session) -> None:
    for who in (_who("olga", Role.operator), _who("bea", Role.bureau), _who("aud", Role.auditor)):
        assert may_read(session, who, "p1")
        assert readable_project(session, who, "p1").id == "p1"
    assert member_projects(session, "olga") == {"p1"}
    assert member_projects(session, "rex") == set()  # removed members read nothing


def test_the_applicant_sees_the_project_but_may_not_read_it(session: Session) -> None:
    ann = _who("ann", Role.operator)
    assert not may_read(session, ann, "p1")
    with pytest.raises(Forbidden, match="not a member of project p1"):
        readable_project(session, ann, "p1")


def test_a_non_member_gets_the_same_answer_for_foreign_and_unknown_ids(session: Session) -> None:
    for who in (_who("rex", Role.operator), _who("eve", Role.operator)):
        answers = []
        for pid in ("p1", "p2", "p" * 40):
            with pytest.raises(ProjectNotFound) as err:
                readable_project(session, who, pid)
            answers.append(str(err.value).replace(pid, "{p}"))
            with pytest.raises(ProjectNotFound):
                operated_project(session, who, pid)
        assert len(set(answers)) == 1


def test_only_operator_members_operate_the_project(session: Session) -> None:
    assert operated_project(session, _who("olga", Role.operator), "p1").id == "p1"
    with pytest.raises(Forbidden, match="not an operator member"):
        operated_project(session, _who("bea", Role.bureau), "p1")
    with pytest.raises(Forbidden, match="not an operator member"):
        operated_project(session, _who("olga"), "p1")  # a member without the operator role
