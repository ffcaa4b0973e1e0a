"""Lab projects (articles 18, 19, 24, 29, 32): applications, review, grants, budgets, disposal.

The grant is the only thing channels consult: :func:`lab.projects.access.authorize`
answers "may principal P do operation O on dataset D in project X with parameters Q",
and :func:`lab.projects.access.commit_result` charges the budget and quotas, records the
derived record and appends its ledger entry in the caller's transaction.

Modules: ``grants`` (requests and grants against policies, pure), ``service`` (apply, resubmit,
suspend, resume, end, expire), ``review``, ``members``, ``views`` (reads, visibility, the
authorize answer), ``hubsync`` (Hub groups follow the database), ``disposal`` (article 19, with
a disposer registry for channel packages), ``sweep`` (expiry, disposal retries, Hub
reconciliation), ``workflow`` (all of it for callers holding a runtime: API, web pages, CLI).
See docs/projects.md.
"""
