"""The database-backed Merkle log: append, signed tree heads, proofs, verification.

Appends run inside the caller's transaction (so a budget spend, its derived record
and its ledger entry commit or roll back together) and serialize on the single
``ledger_state`` row. Every entry stores the root of the tree that includes it, so
:meth:`Ledger.verify` can name the first entry that was changed, deleted or reordered;
signed tree heads, once issued, pin the log against wholesale rewriting.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.orm import Session

from lab.db.base import utcnow
from lab.errors import EntryNotFound, InvalidProof
from lab.ledger import signing
from lab.ledger.entries import canonical_json, make_entry
from lab.ledger.models import LedgerEntryRow, LedgerState, SigningKeyRow, TreeHeadRow
from lab.shared import merkle
from witness.note import ED25519, Signer

#: Called (without arguments) after a transaction that appended entries commits; the cosigner
#: registers itself here so a new checkpoint goes to the witnesses right after each append batch.
APPEND_HOOKS: list[Callable[[], None]] = []


def _appended(session: Session) -> None:
    for hook in list(APPEND_HOOKS):
        hook()


@dataclass(frozen=True)
class LedgerEntry:
    """An appended entry and where it sits in the log."""

    index: int
    kind: str
    entry: dict[str, Any]
    leaf_hash: str
    root_after: str

    @classmethod
    def from_row(cls, row: LedgerEntryRow) -> LedgerEntry:
        return cls(row.idx, row.kind, json.loads(row.body), row.leaf_hash, row.root_after)


@dataclass(frozen=True)
class SignedTreeHead:
    """A tree size and root, signed with the ledger's Ed25519 key."""

    size: int
    root_hash: str
    timestamp_ms: int
    key_id: str
    public_key: str
    signature: str

    def message(self) -> bytes:
        return signing.tree_head_message(self.size, bytes.fromhex(self.root_hash), self.timestamp_ms)

    def verify(self) -> bool:
        """Check the signature against the embedded public key."""
        return signing.key_id(base64.b64decode(self.public_key)) == self.key_id and signing.verify_signature(
            self.public_key, self.signature, self.message()
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    """Outcome of a full recomputation of the log."""

    ok: bool
    size: int
    root_hash: str
    checked_tree_heads: int
    first_bad_index: int | None = None
    reason: str | None = None
    problems: list[str] = field(default_factory=list)


class Ledger:
    """The lab's ledger over one database session.

    >>> import tempfile
    >>> from sqlalchemy.orm import Session
    >>> from lab.db.base import make_engine
    >>> from lab.db.migrate import upgrade
    >>> url = f"sqlite:///{tempfile.mkdtemp()}/lab.sqlite"
    >>> upgrade(url)
    >>> engine = make_engine(url)
    >>> with Session(engine) as session, session.begin():
    ...     ledger = Ledger(session, bytes(32))
    ...     body = {"dataset": "population", "version": 1}
    ...     entry = ledger.append("catalog.dataset_version", body, actor="steward1")
    ...     report = ledger.verify()
    >>> entry.index, entry.kind, entry.entry["actor"], (report.ok, report.size)
    (0, 'catalog.dataset_version', 'steward1', (True, 1))
    >>> engine.dispose()
    """

    def __init__(self, session: Session, at_rest_key: bytes) -> None:
        self.session = session
        self._key = at_rest_key

    # -- writing -----------------------------------------------------------------
    def append(self, kind: str, body: dict[str, Any], actor: str) -> LedgerEntry:
        """Append an entry in the current transaction; returns it with its index."""
        return self.append_many([(kind, body, actor)])[0]

    def append_many(self, items: list[tuple[str, dict[str, Any], str]]) -> list[LedgerEntry]:
        """Append ``(kind, body, actor)`` entries in order, in the current transaction.

        Serializes on the ``ledger_state`` row (``SELECT ... FOR UPDATE``; SQLite transactions
        begin IMMEDIATE), then writes with Core statements — no unit-of-work overhead.
        """
        now = utcnow()
        size, hexes = self.session.execute(
            select(LedgerState.size, LedgerState.frontier).where(LedgerState.id == 1).with_for_update()
        ).one()
        frontier = merkle.Frontier.from_hex(size, hexes)
        rows: list[dict[str, Any]] = []
        out: list[LedgerEntry] = []
        for kind, body, actor in items:
            entry = make_entry(kind, body, actor, now)
            data = canonical_json(entry)
            leaf = merkle.leaf_hash(data)
            index = frontier.size
            frontier.append(leaf)
            root = frontier.root().hex()
            rows.append(
                {
                    "idx": index,
                    "kind": kind,
                    "body": data.decode(),
                    "leaf_hash": leaf.hex(),
                    "root_after": root,
                    "created_at": now,
                }
            )
            out.append(LedgerEntry(index, kind, json.loads(data), leaf.hex(), root))
        if rows:
            event.listen(self.session, "after_commit", _appended, once=True)
            self.session.execute(insert(LedgerEntryRow), rows)
            self.session.execute(
                update(LedgerState)
                .where(LedgerState.id == 1)
                .values(size=frontier.size, frontier=frontier.to_hex())
            )
        return out

    # -- reading -----------------------------------------------------------------
    def size(self) -> int:
        return int(self.session.execute(select(LedgerState.size).where(LedgerState.id == 1)).scalar_one())

    def entry(self, index: int) -> LedgerEntry:
        row = self.session.get(LedgerEntryRow, index)
        if row is None:
            raise EntryNotFound(f"no ledger entry {index}")
        return LedgerEntry.from_row(row)

    def entries(self, start: int = 0, limit: int = 100) -> list[LedgerEntry]:
        rows = self.session.execute(
            select(LedgerEntryRow)
            .where(LedgerEntryRow.idx >= start)
            .order_by(LedgerEntryRow.idx)
            .limit(limit)
        ).scalars()
        return [LedgerEntry.from_row(r) for r in rows]

    def _leaves(self, size: int) -> list[bytes]:
        rows = self.session.execute(
            select(LedgerEntryRow.leaf_hash).order_by(LedgerEntryRow.idx).limit(size)
        ).scalars()
        return [bytes.fromhex(h) for h in rows]

    def _signing_key(self) -> SigningKeyRow:
        row = (
            self.session.execute(
                select(SigningKeyRow)
                .where(SigningKeyRow.active.is_(True))
                .order_by(SigningKeyRow.created_at.desc())
            )
            .scalars()
            .first()
        )
        if row is None:
            key = signing.new_private_key()
            pub = signing.public_bytes(key.public_key())
            kid = signing.key_id(pub)
            from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

            raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            row = SigningKeyRow(
                key_id=kid,
                public_key=base64.b64encode(pub).decode(),
                sealed_private=signing.seal(self._key, raw, b"ledger-signing-key:" + kid.encode()),
                created_at=utcnow(),
                active=True,
            )
            self.session.add(row)
            self.session.flush()
        return row

    def public_keys(self) -> dict[str, str]:
        """All signing public keys ever used (key id -> base64), for offline verifiers."""
        rows = self.session.execute(select(SigningKeyRow)).scalars()
        return {r.key_id: r.public_key for r in rows}

    def _sign(self, size: int, root: bytes, timestamp_ms: int) -> SignedTreeHead:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        krow = self._signing_key()
        raw = signing.unseal(self._key, krow.sealed_private, b"ledger-signing-key:" + krow.key_id.encode())
        sig = Ed25519PrivateKey.from_private_bytes(raw).sign(
            signing.tree_head_message(size, root, timestamp_ms)
        )
        return SignedTreeHead(
            size, root.hex(), timestamp_ms, krow.key_id, krow.public_key, base64.b64encode(sig).decode()
        )

    def note_signer(self, origin: str) -> Signer:
        """The log's key as a C2SP Ed25519 note signer named ``origin`` (signs checkpoints)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        krow = self._signing_key()
        raw = signing.unseal(self._key, krow.sealed_private, b"ledger-signing-key:" + krow.key_id.encode())
        return Signer(origin, ED25519, Ed25519PrivateKey.from_private_bytes(raw))

    def head(self) -> SignedTreeHead:
        """Sign (and remember) the current tree head."""
        size, hexes = self.session.execute(
            select(LedgerState.size, LedgerState.frontier).where(LedgerState.id == 1)
        ).one()
        existing = self.session.get(TreeHeadRow, size)
        keys = self.public_keys()
        if existing is not None and existing.key_id in keys:
            return SignedTreeHead(
                existing.size,
                existing.root_hash,
                existing.timestamp_ms,
                existing.key_id,
                keys[existing.key_id],
                existing.signature,
            )
        root = merkle.Frontier.from_hex(size, hexes).root()
        sth = self._sign(size, root, int(utcnow().timestamp() * 1000))
        self.session.merge(
            TreeHeadRow(
                size=sth.size,
                root_hash=sth.root_hash,
                timestamp_ms=sth.timestamp_ms,
                key_id=sth.key_id,
                signature=sth.signature,
            )
        )
        self.session.flush()
        return sth

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        """Inclusion proof of entry ``index`` in the tree of ``size`` (default: a fresh signed head)."""
        return self.inclusions([index], size)[index]

    def inclusions(self, indexes: list[int], size: int | None = None) -> dict[int, dict[str, Any]]:
        """Inclusion proofs of several entries in one tree, reading and hashing the leaves once."""
        sth = self.head()
        size = sth.size if size is None else size
        for index in indexes:
            if not 0 <= index < size <= sth.size:
                raise InvalidProof(f"entry {index} is not in a tree of size {size} (log size {sth.size})")
        leaves = self._leaves(size)
        root, paths = merkle.inclusion_proofs(leaves, indexes)
        out = {}
        for index in indexes:
            entry = self.entry(index)
            out[index] = {
                "index": index,
                "tree_size": size,
                "entry": entry.entry,
                "leaf_hash": entry.leaf_hash,
                "root_hash": root.hex(),
                "audit_path": [h.hex() for h in paths[index]],
                "tree_head": sth.as_dict() if size == sth.size else None,
            }
        return out

    def consistency_path(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 9162 consistency proof between two sizes, signing nothing (the cosigner's need)."""
        if not 0 < old_size <= new_size <= self.size():
            raise InvalidProof(f"sizes must satisfy 0 < {old_size} <= {new_size} <= {self.size()}")
        return merkle.consistency_proof(self._leaves(new_size), old_size)

    def consistency(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """Consistency proof between two tree sizes."""
        sth = self.head()
        new_size = sth.size if new_size is None else new_size
        if not 0 < old_size <= new_size <= sth.size:
            raise InvalidProof(f"sizes must satisfy 0 < {old_size} <= {new_size} <= {sth.size}")
        leaves = self._leaves(new_size)
        proof = merkle.consistency_proof(leaves, old_size)
        return {
            "old_size": old_size,
            "new_size": new_size,
            "old_root": merkle.root_of(leaves[:old_size]).hex(),
            "new_root": merkle.root_of(leaves).hex(),
            "proof": [h.hex() for h in proof],
            "tree_head": sth.as_dict() if new_size == sth.size else None,
        }

    # -- verification --------------------------------------------------------------
    def _iter_rows(self, batch: int = 5000) -> Iterator[LedgerEntryRow]:
        start = -1
        while True:
            rows = list(
                self.session.execute(
                    select(LedgerEntryRow)
                    .where(LedgerEntryRow.idx > start)
                    .order_by(LedgerEntryRow.idx)
                    .limit(batch)
                ).scalars()
            )
            if not rows:
                return
            yield from rows
            start = rows[-1].idx
            self.session.expunge_all()

    def verify(self, roots_at_sizes: dict[int, bytes] | None = None) -> VerifyReport:
        """Recompute every leaf and root; check every issued tree head. Names the first bad entry.

        ``roots_at_sizes`` is filled with the recomputed root at each size it holds as a key (the
        sizes of witness-cosigned checkpoints, which the caller compares; see ``lab.ledger.audit``).
        """
        heads = {h.size: h for h in self.session.execute(select(TreeHeadRow)).scalars()}
        wanted = roots_at_sizes if roots_at_sizes is not None else {}
        keys = self.public_keys()
        state_size = self.size()
        frontier = merkle.Frontier()
        roots_at: dict[int, bytes] = {}
        report = VerifyReport(ok=True, size=0, root_hash="", checked_tree_heads=0)

        def fail(index: int | None, reason: str) -> VerifyReport:
            report.ok = False
            report.problems.append(reason)
            if report.first_bad_index is None:
                report.first_bad_index, report.reason = index, reason
            return report

        for expected, row in enumerate(self._iter_rows()):
            if row.idx != expected:
                fail(expected, f"entry {expected} is missing (next stored entry is {row.idx})")
                break
            leaf = merkle.leaf_hash(row.body.encode())
            if leaf.hex() != row.leaf_hash:
                fail(row.idx, f"entry {row.idx} was changed: its content no longer matches its leaf hash")
                break
            frontier.append(leaf)
            if frontier.root().hex() != row.root_after:
                fail(
                    row.idx,
                    f"entry {row.idx} is out of place: the tree root after it does not match "
                    "(entries reordered, replaced or inserted)",
                )
                break
            if frontier.size in heads:
                roots_at[frontier.size] = frontier.root()
            if frontier.size in wanted:
                wanted[frontier.size] = frontier.root()
        report.size = frontier.size
        report.root_hash = frontier.root().hex()
        if report.ok and frontier.size != state_size:
            fail(frontier.size, f"entry {frontier.size} is missing: the log state says size {state_size}")
        for size in sorted(heads):
            h = heads[size]
            sth = SignedTreeHead(
                h.size, h.root_hash, h.timestamp_ms, h.key_id, keys.get(h.key_id, ""), h.signature
            )
            if not sth.verify():
                fail(None, f"signed tree head at size {size} has an invalid signature")
            elif (
                report.ok
                and size <= frontier.size
                and roots_at.get(size, merkle.EMPTY_ROOT).hex() != h.root_hash
            ):
                fail(None, f"log no longer matches the tree head signed at size {size}: it was rewritten")
            elif report.ok and size > frontier.size:
                fail(
                    frontier.size,
                    f"a tree head was signed at size {size} but the log has {frontier.size} entries",
                )
            report.checked_tree_heads += 1
        return report

    def count_by_kind(self) -> dict[str, int]:
        rows = self.session.execute(select(LedgerEntryRow.kind, func.count()).group_by(LedgerEntryRow.kind))
        return {k: int(n) for k, n in rows}


def now_ms(now: dt.datetime | None = None) -> int:
    return int((now or utcnow()).timestamp() * 1000)
