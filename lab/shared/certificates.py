"""Product certificates: what an approval attests, and how anyone checks it offline.

A certificate (``format: lab-product-certificate/v1``) is JSON::

    {"format", "registration_number",
     "statement": {...},            # exactly the body of the approval's ledger entry
     "approver", "approved_at",     # the entry's actor and time
     "ledger": {index, tree_size, entry, leaf_hash, root_hash, audit_path, tree_head, checkpoint},
     "lineage_proofs": [{record, index, entry, leaf_hash, audit_path}],   # same tree
     "issued_by"}

The statement holds the product metadata, the artifact digest (or the endpoint description
and its digest), the lineage (each record's id, result digest, ledger index and the leaf hash
of its ledger entry), the digest of the automatic checks, the submitter and the registration
number. :func:`verify_certificate` needs no database and no network: it recomputes the
approval entry's leaf hash, walks the RFC 9162 audit path to the root, checks the Ed25519
signature of the tree head, checks that every certificate field equals the signed statement,
that every lineage record's entry is in the same tree, and (given the file) the artifact's
SHA-256.

A **registry status document** (``format: lab-registry-status/v1``, served publicly at
``/api/v1/registry/{number}/status?since=<tree_size>``) extends that to "still valid now": a
newer signed tree head, a consistency proof from the certificate's tree (the log was not
rewritten), the leaf hashes of the currently stored entries of the approval and lineage, recomputed
from their content, with inclusion proofs (they were not changed; the entries themselves stay
private), and, if revoked, the revocation entry with its inclusion proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.shared import merkle
from lab.shared.standalone import canonical, root_from_inclusion, verify_inclusion_document, verify_tree_head

NO_KEYS = "no trusted log key given: refusing to trust the key the certificate carries"

CERT_FORMAT = "lab-product-certificate/v1"
STATUS_FORMAT = "lab-registry-status/v1"


def build_certificate(
    approval: dict[str, Any], lineage_proofs: list[dict[str, Any]], issued_by: str = "lab"
) -> dict[str, Any]:
    """A certificate from the approval entry's inclusion proof (``Ledger.inclusion``) and lineage proofs."""
    entry = approval["entry"]
    return {
        "format": CERT_FORMAT,
        "registration_number": entry["body"]["registration_number"],
        "statement": entry["body"],
        "approver": entry["actor"],
        "approved_at": entry["time"],
        "ledger": approval,
        "lineage_proofs": lineage_proofs,
        "issued_by": issued_by,
    }


@dataclass
class CertificateReport:
    """The outcome of a verification; ``ok`` is False at the first failure (``reason`` says why)."""

    ok: bool = True
    reason: str | None = None
    checked: list[str] = field(default_factory=list)
    revoked: bool | None = None  # None: not checked against a current log
    revocation: dict[str, Any] | None = None
    registration_number: str | None = None
    key_id: str | None = None

    def fail(self, reason: str) -> CertificateReport:
        self.ok, self.reason = False, reason
        return self

    @property
    def status(self) -> str:
        if not self.ok:
            return "invalid"
        return "revoked" if self.revoked else "valid"


def sha256_path(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def _first_difference(a: Any, b: Any, path: str) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if canonical(a) == canonical(b) else path


def leaf_hash(entry: dict[str, Any]) -> str:
    """The RFC 9162 leaf hash of a ledger entry (hex)."""
    return hashlib.sha256(b"\x00" + canonical(entry)).hexdigest()


def verify_certificate(
    cert: dict[str, Any],
    artifact: Path | None = None,
    status: dict[str, Any] | None = None,
    trusted_keys: dict[str, str] | None = None,
    witnesses: Sequence[str] = (),
    quorum: int | None = None,
) -> CertificateReport:
    """Verify ``cert`` offline; with ``artifact`` also its digest; with ``status`` also freshness.

    ``trusted_keys`` (the log's keys, ``{key_id: base64}``; see ``standalone.trusted_log_keys``)
    come from the verifier and are required; with ``witnesses`` (their vkeys) the certificate's
    checkpoint must carry ``quorum`` (default: all) of their cosignatures.

    >>> verify_certificate({"format": "x"}, trusted_keys={"k": "v"}).reason
    'not a lab product certificate (format x)'
    >>> verify_certificate({"format": "lab-product-certificate/v1"}).reason == NO_KEYS
    True
    """
    rep = CertificateReport()
    if not trusted_keys:
        return rep.fail(NO_KEYS)
    need = len(witnesses) if quorum is None else quorum
    try:
        return _verify(cert, artifact, status, (trusted_keys, list(witnesses), need), rep)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return rep.fail(f"malformed certificate: missing or invalid field {exc}")


def _verify(
    cert: dict[str, Any],
    artifact: Path | None,
    status: dict[str, Any] | None,
    trust: tuple[dict[str, str], list[str], int],
    rep: CertificateReport,
) -> CertificateReport:
    if cert.get("format") != CERT_FORMAT:
        return rep.fail(f"not a lab product certificate (format {cert.get('format')})")
    doc, stmt = cert["ledger"], cert["statement"]
    rep.registration_number = cert.get("registration_number")
    trusted_keys, witnesses, quorum = trust
    rep.key_id = (doc.get("tree_head") or {}).get("key_id") or ",".join(sorted(trusted_keys))
    ok, why = verify_inclusion_document(doc, trusted_keys, witnesses, quorum)
    if not ok:
        return rep.fail(f"ledger proof: {why}")
    rep.checked.append(f"ledger {why}")
    entry = doc["entry"]
    if entry.get("kind") != "product.transition" or entry["body"].get("action") != "approved":
        return rep.fail("the ledger entry is not a product approval")
    for name, value, signed in (
        ("statement", stmt, entry["body"]),
        ("approver", cert.get("approver"), entry.get("actor")),
        ("approved_at", cert.get("approved_at"), entry.get("time")),
        ("registration_number", cert.get("registration_number"), entry["body"].get("registration_number")),
    ):
        diff = _first_difference(value, signed, name)
        if diff:
            return rep.fail(
                f"certificate field {diff} does not match the signed ledger entry (certificate altered)"
            )
    rep.checked.append("certificate fields equal the signed approval statement")
    root, size = doc["root_hash"], int(doc["tree_size"])
    proofs = {p["record"]: p for p in cert.get("lineage_proofs", [])}
    for item in stmt["lineage"]:
        p = proofs.get(item["record"])
        if p is None:
            return rep.fail(f"no ledger proof for lineage record {item['record']}")
        if leaf_hash(p["entry"]) != item["leaf_hash"] or p["leaf_hash"] != item["leaf_hash"]:
            return rep.fail(
                f"lineage record {item['record']}: its ledger entry does not match the attested leaf hash"
            )
        body = p["entry"].get("body", {})
        if p["entry"].get("kind") != "derived.record" or body.get("record") != item["record"]:
            return rep.fail(f"lineage record {item['record']}: the proven entry is not that derived record")
        if body.get("result_sha256") != item["result_sha256"] or int(p["index"]) != int(item["ledger_index"]):
            return rep.fail(f"lineage record {item['record']}: result digest or ledger index differ")
        path = [bytes.fromhex(h) for h in p["audit_path"]]
        got = root_from_inclusion(bytes.fromhex(item["leaf_hash"]), int(p["index"]), size, path)
        if got is None or got.hex() != root:
            return rep.fail(f"lineage record {item['record']}: audit path does not lead to the signed root")
    rep.checked.append(f"{len(stmt['lineage'])} lineage record(s) proven in the same signed tree")
    if artifact is not None:
        art = stmt["artifact"]
        if art.get("kind") != "file":
            return rep.fail("this product has no file artifact (it is an API/service product)")
        digest, n = sha256_path(artifact)
        if digest != art["sha256"]:
            return rep.fail(
                f"artifact {artifact.name}: SHA-256 {digest} differs from the certified {art['sha256']} "
                "(the file was altered or is another file)"
            )
        rep.checked.append(f"artifact {artifact.name} ({n} bytes) has the certified SHA-256")
    if status is not None:
        return _verify_status(cert, status, rep, trusted_keys)
    return rep


def _verify_status(
    cert: dict[str, Any], status: dict[str, Any], rep: CertificateReport, trusted_keys: dict[str, str]
) -> CertificateReport:
    doc = cert["ledger"]
    if status.get("format") != STATUS_FORMAT:
        return rep.fail(f"not a registry status document (format {status.get('format')})")
    if status.get("registration_number") != cert["registration_number"]:
        return rep.fail("the status document is for another registration number")
    head = status["tree_head"]
    ok, why = verify_tree_head(head, trusted_keys)
    if not ok:
        return rep.fail(f"current tree head: {why}")
    old_size, old_root = int(doc["tree_size"]), doc["root_hash"]
    new_size, new_root = int(head["size"]), head["root_hash"]
    cons = status["consistency"]
    if (int(cons["old_size"]), int(cons["new_size"])) != (old_size, new_size):
        return rep.fail("the consistency proof is for other tree sizes")
    if new_size < old_size or not merkle.verify_consistency(
        old_size,
        new_size,
        [bytes.fromhex(h) for h in cons["proof"]],
        bytes.fromhex(old_root),
        bytes.fromhex(new_root),
    ):
        return rep.fail(
            f"the ledger was rewritten: the current tree (size {new_size}) does not extend the tree "
            f"of size {old_size} the certificate was issued in"
        )
    rep.checked.append(f"current tree of size {new_size} extends the certificate's tree of size {old_size}")
    expected = {int(doc["index"]): doc["leaf_hash"]}
    expected.update({int(item["ledger_index"]): item["leaf_hash"] for item in cert["statement"]["lineage"]})
    entries = {int(k): v for k, v in status.get("entries", {}).items()}
    for index, leaf in sorted(expected.items()):
        cur = entries.get(index)
        if cur is None:
            return rep.fail(f"the status document lacks ledger entry {index}")
        current = leaf_hash(cur["entry"]) if "entry" in cur else cur.get("leaf_hash")
        if current != leaf:
            what = "the product's approval" if index == int(doc["index"]) else "a lineage record"
            return rep.fail(
                f"ledger entry {index} ({what}) was changed after the certificate was issued: "
                "its stored content no longer hashes to the certified leaf"
            )
        if not _included(leaf, index, new_size, cur["audit_path"], new_root):
            return rep.fail(
                f"ledger entry {index} is not included in the current signed tree: the log was rewritten"
            )
    rep.checked.append(f"{len(expected)} certified ledger entries unchanged in the current log")
    rev = status.get("revocation")
    rep.revoked = False
    if rev is not None:
        entry = rev["entry"]
        body = entry.get("body", {})
        if (
            entry.get("kind") != "product.transition"
            or body.get("action") != "revoked"
            or body.get("registration_number") != cert["registration_number"]
        ):
            return rep.fail("the revocation proof is not a revocation of this product")
        if not _included(leaf_hash(entry), int(rev["index"]), new_size, rev["audit_path"], new_root):
            return rep.fail("the revocation entry is not included in the current signed tree")
        rep.revoked, rep.revocation = (
            True,
            {
                "index": rev["index"],
                "time": entry["time"],
                "by": entry["actor"],
                "reason": body.get("reason", ""),
            },
        )
        rep.checked.append(f"REVOKED by ledger entry {rev['index']} at {entry['time']}")
    elif status.get("status") == "revoked":
        return rep.fail("the registry says revoked but gives no revocation proof")
    return rep


def _included(leaf_hex: str, index: int, size: int, path: list[str], root_hex: str) -> bool:
    got = root_from_inclusion(bytes.fromhex(leaf_hex), index, size, [bytes.fromhex(h) for h in path])
    return got is not None and got.hex() == root_hex
