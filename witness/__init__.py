"""A transparency-log witness (C2SP ``tlog-witness``), runnable by anyone, anywhere.

It imports nothing of the lab but this package, :mod:`lab.shared` (the dependency-free module the
log, the client and the offline verifier share), the standard library and ``cryptography``:
a data responsible unit, the district big-data center or an auditor runs it on their own
machine (``lab witness serve`` or ``python -m witness``).

* :mod:`witness.note` — C2SP signed notes, checkpoints, Ed25519 and ``cosignature/v1`` keys;
* :mod:`lab.shared.merkle` — RFC 9162 consistency-proof verification (the one copy, shared);
* :mod:`witness.state` — SQLite state: the last cosigned checkpoint per origin, evidence of conflicts;
* :mod:`witness.server` — the HTTP protocol (``add-checkpoint``, ``<origin hash>/checkpoint``).
"""
