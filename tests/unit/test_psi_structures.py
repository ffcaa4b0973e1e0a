"""The lab's GCS and Bloom-filter packing is byte-identical to openmined-psi's, and keeps its FPR bound."""

from __future__ import annotations

import numpy as np
import pytest

from psi_service import structures
from psi_service.structures import (
    bloom_bits,
    bloom_parameters,
    build_setup,
    choose_structure,
    gcs_hash_range,
    gcs_hashes,
    golomb_compress,
    size_bucket,
)

psi = pytest.importorskip("private_set_intersection.python")


def _library_and_elements(n: int) -> tuple[object, list[str], list[bytes]]:
    server = psi.server.CreateWithNewKey(True)
    items = [f"item-{i}" for i in range(n)]
    raw = server.CreateSetupMessage(0.5, 1, items, psi.DataStructure.RAW)
    return server, items, list(raw.raw.encrypted_elements)


@pytest.mark.parametrize(
    ("n", "n_client", "fpr"),
    [(1, 1, 1e-6), (5, 3, 0.5), (1500, 1024, 1e-9), (1000, 4096, 1e-3), (1200, 16, 1e-9), (900, 100, 0.9)],
)
def test_packing_is_byte_identical_to_create_setup_message(n: int, n_client: int, fpr: float) -> None:
    server, items, elements = _library_and_elements(n)
    for ds, kind in ((psi.DataStructure.GCS, "gcs"), (psi.DataStructure.BLOOM_FILTER, "bloom_filter")):
        reference = server.CreateSetupMessage(fpr, n_client, items, ds).SerializeToString()
        mine = psi.ServerSetup()
        if kind == "gcs":
            hash_range = gcs_hash_range(fpr, n_client, n)
            bits, div = golomb_compress(np.sort(gcs_hashes(elements, hash_range)))
            mine.gcs.bits, mine.gcs.div, mine.gcs.hash_range = bits, div, hash_range
        else:
            k, num_bytes = bloom_parameters(fpr, n_client, n)
            mine.bloom_filter.num_hash_functions = k
            mine.bloom_filter.bits = bloom_bits(elements, k, num_bytes)
        assert mine.SerializeToString() == reference, kind


def test_a_library_client_reads_the_lab_built_setup() -> None:
    server, _items, elements = _library_and_elements(3000)
    client = psi.client.CreateWithNewKey(True)
    query = [f"item-{i}" for i in range(2500, 3500)]
    for bound in (1024, 1 << 20):
        data, kind = build_setup(sorted(elements), 1e-9, bound)
        setup = psi.ServerSetup()
        setup.ParseFromString(data)
        assert setup.WhichOneof("data_structure") == kind
        response = server.ProcessRequest(client.CreateRequest(query))
        assert sorted(client.GetIntersection(setup, response)) == list(range(500))


def test_buckets_and_structure_choice() -> None:
    assert [size_bucket(n) for n in (1, 1024, 1025, 10_000, 100_000)] == [1024, 1024, 2048, 16384, 131072]
    assert size_bucket(5, min_bucket=1) == 8
    assert choose_structure(1e-9, 16384, 100_000) == "gcs"
    assert choose_structure(1e-9, 131072, 1_000_000) == "bloom_filter"  # GCS hash range would overflow
    assert gcs_hash_range(1e-9, 16384, 100_000) < structures.GCS_MAX_HASH_RANGE
    with pytest.raises(ValueError):
        size_bucket(0)


def _random_elements(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [b"\x02" + rng.bytes(32) for _ in range(n)]


def test_gcs_false_positive_rate_stays_within_the_configured_bound() -> None:
    """A non-member matches iff its hash collides with a member's: rate ≤ fpr / n_client per element."""
    n_server, n_client, fpr = 20_000, 1000, 0.5  # a loose bound so that false positives are measurable
    members = _random_elements(n_server, 1)
    hash_range = gcs_hash_range(fpr, n_client, n_server)
    stored = np.unique(gcs_hashes(members, hash_range))
    probes = _random_elements(200_000, 2)
    false_positives = int(np.isin(gcs_hashes(probes, hash_range), stored).sum())
    expected = len(probes) * fpr / n_client  # 100
    assert 0 < false_positives <= expected + 4 * expected**0.5
    # the configured production bound: fpr per whole query of n_client items
    assert n_server / gcs_hash_range(1e-9, 16384, n_server) * 16384 <= 1e-9 * 1.0001


def test_bloom_false_positive_rate_stays_within_the_configured_bound() -> None:
    n_server, n_client, fpr = 20_000, 1000, 0.5
    members = _random_elements(n_server, 3)
    k, num_bytes = bloom_parameters(fpr, n_client, n_server)
    bits = np.unpackbits(np.frombuffer(bloom_bits(members, k, num_bytes), dtype=np.uint8), bitorder="little")
    probes = _random_elements(100_000, 4)
    num_bits = 8 * num_bytes
    h1 = structures._sha_mod(probes, b"1", num_bits)
    h2 = structures._sha_mod(probes, b"2", num_bits)
    idx = (h1[:, None] + np.arange(k)[None, :] * h2[:, None]) % num_bits
    false_positives = int(bits[idx].all(axis=1).sum())
    expected = len(probes) * fpr / n_client  # 50 (a Bloom filter sized this way stays below its bound)
    assert false_positives <= expected + 4 * expected**0.5
    m1, m2 = structures._sha_mod(members, b"1", num_bits), structures._sha_mod(members, b"2", num_bits)
    assert bits[(m1[:, None] + np.arange(k)[None, :] * m2[:, None]) % num_bits].all()  # no false negatives


def test_empty_server_set_packs_to_an_empty_setup() -> None:
    data, kind = build_setup([], 1e-9, 1024)
    setup = psi.ServerSetup()
    setup.ParseFromString(data)
    assert kind == "gcs" and setup.gcs.bits == b""
    assert golomb_compress(np.zeros(0, dtype=np.int64)) == (b"", 0)
