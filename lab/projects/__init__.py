"""Lab projects (articles 18, 19, 24, 29, 32): applications, review, grants, budgets, disposal.

The grant is the only thing channels consult: :func:`lab.projects.access.authorize`
answers "may principal P do operation O on dataset D in project X with parameters Q",
and :func:`lab.projects.access.commit_result` charges the budget and quotas, records the
derived record and appends its ledger entry in the caller's transaction.
"""
