"""GCS and Bloom filters for every small set size (issue 13: a 3-id cohort probe crashed
``golomb_compress`` with ``math domain error``): sizes 0, 1, 2, 3 against small and large client
bounds build, and the PSI library reads them with the right answer; a bound below 1 is a typed 4xx."""

from __future__ import annotations

import numpy as np
import pytest

from psi_service import parallel
from psi_service.structures import (
    UnsupportedSetSize,
    build_setup,
    golomb_compress,
    per_element_fpr,
    size_bucket,
)

psi = pytest.importorskip("private_set_intersection.python")


@pytest.mark.parametrize("n", [0, 1, 2, 3])
@pytest.mark.parametrize("bound", [1, 2, 3, 2048, 1 << 20])
def test_small_sets_build_and_answer_correctly(n: int, bound: int) -> None:
    server = psi.server.CreateWithNewKey(True)
    key = server.GetPrivateKeyBytes()
    items = [f"id-{i}" for i in range(n)]
    elements = sorted(parallel.encrypt_server_chunk(key, items)) if n else []
    data, kind = build_setup(elements, 1e-9, bound)
    setup = psi.ServerSetup()
    setup.ParseFromString(data)
    assert setup.WhichOneof("data_structure") == kind
    client = psi.client.CreateWithNewKey(True)
    query = ["id-0", "id-1", "id-2", "not-there"]
    response = server.ProcessRequest(client.CreateRequest(query))
    assert sorted(client.GetIntersection(setup, response)) == list(range(n))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_small_sets_match_the_library_where_it_is_defined(n: int) -> None:
    server = psi.server.CreateWithNewKey(True)
    items = [f"id-{i}" for i in range(n)]
    elements = sorted(parallel.encrypt_server_chunk(server.GetPrivateKeyBytes(), items))
    reference = server.CreateSetupMessage(1e-3, 4, items, psi.DataStructure.GCS)
    assert build_setup(elements, 1e-3, 4)[0] == reference.SerializeToString()


def test_golomb_handles_degenerate_spans() -> None:
    assert golomb_compress(np.array([], dtype=np.int64)) == (b"", 0)
    bits, div = golomb_compress(np.array([0], dtype=np.int64))  # avg 1: log2(0) in the library
    assert div == 0 and bits
    bits, div = golomb_compress(np.array([5, 2**55, 2**61], dtype=np.int64))  # 1 - p rounds to 1
    assert 0 < div <= 62 and bits


@pytest.mark.parametrize("bad", [0, -1])
def test_a_client_bound_below_one_is_a_typed_error(bad: int) -> None:
    with pytest.raises(UnsupportedSetSize) as err:
        size_bucket(bad)
    assert err.value.status == 400
    with pytest.raises(UnsupportedSetSize):
        per_element_fpr(1e-9, bad)
    with pytest.raises(UnsupportedSetSize):
        build_setup([], 1e-9, bad)
