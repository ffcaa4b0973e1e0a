"""View builders of the bureau pages: plain functions from a session to a template context.

They call the capabilities' services (catalog, ledger, projects, products) and
:mod:`lab.web.queries` for the few read-only lookups those services do not offer.
"""
