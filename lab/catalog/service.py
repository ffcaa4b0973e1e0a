"""Catalog operations: import a dataset version, list and read entries, fetch a version's data.

An import validates the file, writes Parquet to the raw bucket (content-addressed),
and records the version and its ledger entry in one transaction. Re-importing creates
a new version; earlier versions stay readable.
"""

from __future__ import annotations

import builtins
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lab.catalog.models import DatasetRow, DatasetVersionRow
from lab.catalog.policy import AccountPolicy, OpenAttribute, Policy, parse_policy, require_account
from lab.catalog.validate import count_entities, to_parquet
from lab.db.base import utcnow
from lab.errors import AccountRuleFixed, DatasetNotFound
from lab.ledger import Ledger
from lab.ledger.entries import canonical_json
from lab.storage import ObjectStore, StoredObject


@dataclass(frozen=True)
class DatasetVersion:
    """A dataset version as the rest of the lab sees it."""

    dataset: str
    version: int
    policy: Policy
    sha256: str
    row_count: int
    entity_count: int | None  # distinct entity keys; None for versions imported before it was counted
    size_bytes: int
    bucket: str
    object_key: str
    imported_by: str
    imported_at: str
    ledger_index: int

    @property
    def stored(self) -> StoredObject:
        return StoredObject(self.bucket, self.object_key, self.sha256, self.size_bytes)

    def entry(self) -> dict[str, Any]:
        """The public catalog entry (metadata only, never data)."""
        p = self.policy
        return {
            "id": self.dataset,
            "title": p.title.model_dump(),
            "description": p.description,
            "responsible_unit": p.responsible_unit,
            "format": p.format,
            "classification": p.classification.value,
            "personal_information": p.personal_information,
            "trade_secret": p.trade_secret,
            "share": p.share.model_dump(mode="json"),
            "open": p.open.value,
            "update_cycle": p.update_cycle,
            "retention_days": p.retention_days,
            "version": self.version,
            "row_count": self.row_count,
            "entity_count": self.entity_count,
            "sha256": self.sha256,
            "imported_at": self.imported_at,
            "ledger_index": self.ledger_index,
            "channels": sorted(k for k, v in p.channels.model_dump().items() if v is not None),
        }


def _to_version(row: DatasetVersionRow) -> DatasetVersion:
    return DatasetVersion(
        dataset=row.dataset_id,
        version=row.version,
        policy=parse_policy(row.policy, f"{row.dataset_id} v{row.version}"),
        sha256=row.sha256,
        row_count=row.row_count,
        entity_count=row.entity_count,
        size_bytes=row.size_bytes,
        bucket=row.bucket,
        object_key=row.object_key,
        imported_by=row.imported_by,
        imported_at=row.imported_at.isoformat(),
        ledger_index=row.ledger_index,
    )


def policy_digest(policy: Policy) -> str:
    """SHA-256 of the policy's canonical JSON."""
    return hashlib.sha256(canonical_json(policy.model_dump(mode="json"))).hexdigest()


class CatalogReader:
    """The catalog's versions as one session sees them (reads only)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def list(self) -> list[DatasetVersion]:
        """Current version of every dataset."""
        rows = self.session.execute(
            select(DatasetVersionRow)
            .join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id)
            .where(DatasetVersionRow.version == DatasetRow.current_version)
            .order_by(DatasetRow.id)
        ).scalars()
        return [_to_version(r) for r in rows]

    def get(self, dataset: str, version: int | None = None) -> DatasetVersion:
        """A dataset's current (or given) version."""
        q = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == dataset)
        if version is None:
            q = q.join(DatasetRow, DatasetRow.id == DatasetVersionRow.dataset_id).where(
                DatasetVersionRow.version == DatasetRow.current_version
            )
        else:
            q = q.where(DatasetVersionRow.version == version)
        row = self.session.execute(q).scalar_one_or_none()
        if row is None:
            what = dataset if version is None else f"{dataset} version {version}"
            raise DatasetNotFound(f"no dataset {what}")
        return _to_version(row)

    def versions(self, dataset: str) -> builtins.list[DatasetVersion]:
        rows = list(
            self.session.execute(
                select(DatasetVersionRow)
                .where(DatasetVersionRow.dataset_id == dataset)
                .order_by(DatasetVersionRow.version)
            ).scalars()
        )
        if not rows:
            raise DatasetNotFound(f"no dataset {dataset}")
        return [_to_version(r) for r in rows]


class CatalogImporter:
    """Imports new dataset versions: validate, store, append to the ledger (the caller commits)."""

    def __init__(self, session: Session, store: ObjectStore, ledger: Ledger) -> None:
        self.session, self.store, self.ledger = session, store, ledger

    def import_file(self, path: Path, policy: Policy, actor: str) -> DatasetVersion:
        """Validate and import ``path`` as the next version of ``policy.dataset``."""
        require_account(policy, policy.dataset)
        self.keep_account_rule(policy)  # early, before the upload; again under the lock below
        with tempfile.TemporaryDirectory(prefix="lab-import-") as tmp:
            parquet = Path(tmp) / "data.parquet"
            rows = to_parquet(path, policy, parquet)
            entities = count_entities(parquet, policy.entity_key)
            obj = self.store.put_file(
                self.store.cfg.bucket_raw,
                f"datasets/{policy.dataset}",
                parquet,
                "application/vnd.apache.parquet",
            )
        now = utcnow()
        ds = self.session.execute(
            select(DatasetRow).where(DatasetRow.id == policy.dataset).with_for_update()
        ).scalar_one_or_none()
        self.keep_account_rule(policy)
        version = (ds.current_version + 1) if ds else 1
        if ds is None:
            ds = DatasetRow(id=policy.dataset, current_version=version, created_at=now, updated_at=now)
            self.session.add(ds)
        else:
            ds.current_version, ds.updated_at = version, now
        # a non-open dataset's exact size is not for every ledger reader; the file's SHA-256 binds it
        size = {"row_count": rows} if policy.open is not OpenAttribute.non_open else {}
        entry = self.ledger.append(
            "catalog.dataset_version",
            {
                "dataset": policy.dataset,
                "version": version,
                "sha256": obj.sha256,
                **size,
                "policy_sha256": policy_digest(policy),
                "classification": policy.classification.value,
                "open": policy.open.value,
                "share": policy.share.attribute.value,
                "responsible_unit": policy.responsible_unit,
            },
            actor=actor,
        )
        row = DatasetVersionRow(
            dataset_id=policy.dataset,
            version=version,
            policy=policy.model_dump(mode="json"),
            sha256=obj.sha256,
            bucket=obj.bucket,
            object_key=obj.key,
            size_bytes=obj.size,
            row_count=rows,
            entity_count=entities,
            imported_by=actor,
            imported_at=now,
            ledger_index=entry.index,
        )
        self.session.add(row)
        self.session.flush()
        return _to_version(row)

    def keep_account_rule(self, policy: Policy) -> None:
        """Refuse a version that would change the composition rule of the dataset's account.

        An account keeps one rule (``account.composition``) for its life: switching between basic
        composition and zCDP is not a proven privacy filter (:mod:`lab.budgets.accounting`). The
        account's rule is the one its stored versions declare; versions stored before accounts had a
        declared rule (no ``composition`` key) fix none, and the first version that declares one
        fixes it (ADR 0014: accounts from before the decision).
        """
        if policy.account is None:
            return
        stored = self.session.execute(
            select(DatasetVersionRow.version, DatasetVersionRow.policy)
            .where(DatasetVersionRow.dataset_id == policy.dataset)
            .order_by(DatasetVersionRow.version.desc())
        ).all()
        for version, data in stored:
            if "composition" in (data.get("account") or {}):
                rule = AccountPolicy.model_validate(data["account"]).composition
                if rule != policy.account.composition:
                    raise AccountRuleFixed(
                        f"{policy.dataset}: account.composition is {rule} (version {version}); an account "
                        f"keeps one composition rule for its life, {policy.account.composition} is refused",
                        dataset=policy.dataset,
                        composition=rule,
                        field="account.composition",
                    )
                return


class CatalogFetcher:
    """Verified local copies of stored versions (no database needed)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def fetch(self, version: DatasetVersion, cache_dir: Path) -> Path:
        """Local, verified Parquet file of a version (downloaded once per version into ``cache_dir``)."""
        dest = cache_dir / version.dataset / f"{version.sha256}.parquet"
        if dest.exists():
            return dest
        return self.store.get_file(version.stored, dest)
