"""Private set intersection channel, around openmined-psi (ECDH-PSI on P-256).

Modes (chosen per dataset column by policy, granted per project):

* ``intersection`` — the operator learns which of its items are in the column (open data only);
* ``cardinality`` — the operator learns how many (a modified client learns which: intersection-
  equivalent, so open data only as well);
* ``cohort`` — roles reversed: the lab learns which of its records match, stores them as a cohort
  of the project and tells the operator only a DP-noised size; the operator's answer carries a
  batched DLEQ proof (:mod:`~psi_service.dleq`, RFC 9497) so that it cannot choose the cohort.

Modules, by side:

* wire protocol (both sides): :mod:`~psi_service.protocol` (the versioned envelope),
  :mod:`~psi_service.normalize` (identifier normalization), :mod:`~psi_service.structures`
  (GCS/Bloom packing);
* operator side: :mod:`~psi_service.operator`, driven by ``lab.client`` (it imports no server module);
* server side: :mod:`~psi_service.access` (parameter rules), :mod:`~psi_service.server`,
  :mod:`~psi_service.requests` and :mod:`~psi_service.cohort` (the service),
  :mod:`~psi_service.keys` (key epochs), :mod:`~psi_service.setups` (the setup cache),
  :mod:`~psi_service.parallel` (EC work in worker processes), :mod:`~psi_service.dleq` (cohort
  proofs), :mod:`~psi_service.models`, :mod:`~psi_service.disposal`.

No web framework here; the lab reaches this package only through ``lab.channels``, its router and
CLI commands and the client's operator side (``.importlinter``, contract ``channel-entries``).
"""
