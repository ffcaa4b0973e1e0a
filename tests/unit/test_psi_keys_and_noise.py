"""Key derivation, normalization glue and the cohort size's noise bound (no I/O)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from psi_service.cohort import geometric_bound, noisy_count
from psi_service.keys import P256_ORDER, derive_key, key_fingerprint
from psi_service.normalize import normalize_column, normalize_items
from psi_service.parallel import slices


def test_derived_keys_are_valid_scalars_distinct_per_dataset_version_column_and_role() -> None:
    master = bytes(range(32))
    keys = {
        derive_key(master, role, ds, v, col)
        for role in ("server", "cohort-client")
        for ds in ("population", "tax_credit")
        for v in (1, 2)
        for col in ("phone", "resident_id")
    }
    assert len(keys) == 16
    assert all(len(k) == 32 and 1 <= int.from_bytes(k, "big") < P256_ORDER for k in keys)
    assert derive_key(master, "server", "population", 1, "phone") == derive_key(
        master, "server", "population", 1, "phone"
    )
    assert key_fingerprint(master) != key_fingerprint(bytes(32)) and len(key_fingerprint(master)) == 16


def test_library_accepts_derived_keys() -> None:
    psi = pytest.importorskip("private_set_intersection.python")
    key = derive_key(b"\x01" * 32, "server", "population", 1, "phone")
    assert psi.server.CreateFromKey(key, True).GetPrivateKeyBytes() == key


def test_normalization_reports_invalid_items_and_keeps_positions() -> None:
    n = normalize_items(
        ["13812345678", "+86 138-1234-5678", "12345", None, float("nan"), 13912345678], "phone"
    )
    assert n.values == ["13812345678", "13912345678"]
    assert n.positions == {"13812345678": [0, 1], "13912345678": [5]}
    assert n.invalid_count == 3 and [e[0] for e in n.invalid_examples] == [2, 3, 4]
    assert n.total == 6 and len(n.digest) == 64
    norm, keys = normalize_column(
        ["110105491231002", "11010519491231002X", "bad"], ["a", "b", "c"], "resident_id"
    )
    assert norm.values == ["11010519491231002X"] and keys == [["a", "b"]]
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize_items(["x"], "passport")


def test_slices_cover_everything_in_order() -> None:
    assert slices(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert slices(2, 8) == [(0, 1), (1, 2)]
    assert slices(0, 4) == [(0, 0)]


@pytest.mark.parametrize("epsilon", ["0.1", "0.5", "1"])
def test_cohort_noise_respects_its_stated_95_percent_bound(epsilon: str) -> None:
    eps = Decimal(epsilon)
    bound = geometric_bound(eps)
    draws = np.array([noisy_count(10_000, eps) - 10_000 for _ in range(4000)])
    outside = float(np.mean(np.abs(draws) > bound))
    assert outside <= 0.05 + 3 * (0.05 * 0.95 / 4000) ** 0.5  # within sampling error of 5%
    assert outside >= 0.005  # and the bound is not absurdly loose: the mechanism adds noise
    assert noisy_count(0, eps) >= 0  # clamped at zero


def test_the_padding_of_a_non_open_column_is_a_keyed_geometric_release() -> None:
    """The element count an operator sees is distinct identifiers + padding; the padding must be a
    DP release of that count (geometric at ε = 0.1 around an offset, never clamped in practice) and
    the same for every artifact of one (dataset, version, column), so key rotations cannot average it."""
    import math
    from types import SimpleNamespace as NS

    from psi_service.setups import PAD_EPSILON, PAD_OFFSET, padding, padding_count

    closed = NS(dataset="population", version=1, policy=NS(is_open=False))
    key = b"\x07" * 32
    assert padding_count(key, closed, "phone") == padding_count(key, closed, "phone")
    assert len(padding(key, closed, "phone")) == padding_count(key, closed, "phone")
    assert padding(key, NS(dataset="e", version=1, policy=NS(is_open=True)), "uscc") == []
    z = np.array(
        [padding_count(bytes([i % 256, i // 256]) * 16, closed, "phone") - PAD_OFFSET for i in range(6000)]
    )
    alpha = math.exp(-PAD_EPSILON)
    assert abs(z.mean()) < 1.0 and z.min() > -PAD_OFFSET  # centred, never clamped at zero
    # the two-sided geometric law: P(|Z| >= t) = 2 α^t / (1 + α); E|Z| = 2α / (1 - α²) ≈ 10
    assert abs(np.abs(z).mean() - 2 * alpha / (1 - alpha**2)) < 0.6
    for t in (5, 10, 20):
        assert abs(np.mean(np.abs(z) >= t) - 2 * alpha**t / (1 + alpha)) < 0.03
