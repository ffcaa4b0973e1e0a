"""Derived records: every channel result, with its cost, digest and ledger index (articles 9, 24)."""
