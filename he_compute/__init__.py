"""Homomorphic computation channel (TenSEAL CKKS): encrypted scoring and lookups, isolated worker.

The operator's data stays encrypted under the operator's key; the lab receives a *public*
context (no secret key, approved parameters — :mod:`he_compute.contexts`), combines the
operator's ciphertexts with server-side material it has cleared (models, DP tables —
:mod:`he_compute.ops`) and returns ciphertexts only the operator can decrypt. Every byte of
operator material is parsed and evaluated in an isolated worker process
(:mod:`he_compute.worker`) with memory, time and size limits. :mod:`he_compute.service` ties
it to the grant (``authorize``) and the charge (``commit_result``).

This package is the server side only. The wire frame is :mod:`lab.shared.frames` (one copy for
both sides; :mod:`he_compute.frames` adds the server's bounded stream reader and its 400/413
refusals); the operator side is ``lab.client`` (``_he.py``, ``_encrypt.py``, ``_wire.py``). The lab
reaches this package only through ``lab.channels``, its router and CLI commands (``.importlinter``,
contract ``channel-entries``).
"""
