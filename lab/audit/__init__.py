"""Audit of every API request (articles 29, 32) and the anomalies the bureau watches.

``models`` holds the ``audit_requests`` table; ``service`` the batching writer (requests are
queued by the API middleware and written by one background thread, so auditing adds
microseconds to a request and a failing write never fails it) and the anomaly queries:
refused requests per principal, budgets near exhaustion, quota hits.
"""
