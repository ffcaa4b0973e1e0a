"""What the client, the server, the witness and an offline auditor all need, with no heavy dependency.

This package imports only the standard library and ``cryptography`` (no SQLAlchemy, no FastAPI, no
pydantic, nothing else of the lab); ``.importlinter`` and ``tests/unit/test_boundaries.py`` keep it so.

* :mod:`lab.shared.standalone` — the offline verifier (RFC 9162 leaf/node hashes, inclusion and
  consistency verification, canonical JSON, signed tree heads, C2SP checkpoints and cosignatures,
  proof documents and audit bundles); a single file an auditor can copy and run alone;
* :mod:`lab.shared.merkle` — the log's side of RFC 9162: tree hashes, frontiers, inclusion and
  consistency proofs (re-exporting the verifiers of :mod:`~lab.shared.standalone`);
* :mod:`lab.shared.certificates` — product certificates and registry status documents: built by the
  server, verified by anyone offline;
* :mod:`lab.shared.pins` — keys fetched once and pinned by a verifier (trust on first use);
* :mod:`lab.shared.frames` — the HE channel's binary frame (one encoder, one bounded decoder).
"""
