"""Public Data Innovation Lab: privacy-preserving access to a district's public data.

Operators reach public data only through private set intersection, homomorphic
computation and differentially private queries; every result is recorded in a
tamper-evident ledger. See ``docs/architecture.md`` for the capability map.
"""

__version__ = "0.1.0"
