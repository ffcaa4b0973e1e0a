"""Product registration (article 24): lineage, automatic checks, bureau review, certificates.

``models`` holds the tables and ``schemas`` the submission and view models; ``checks`` runs the
automatic checks at submission (lineage, artifact digest, disclosure checks on tables);
``service`` registers products and versions; ``review`` approves, rejects, revokes and numbers
them; ``queries`` lists, shows (with lineage), serves the review queue, certificates and the
public lookup; ``certificates`` builds and verifies the offline-checkable certificate.
Routes, the CLI and the web pages call ``service``, ``review`` and ``queries``.
"""
