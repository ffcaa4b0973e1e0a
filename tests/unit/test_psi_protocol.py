"""The versioned PSI envelope: round trip, truncation and tampering detected, library messages checked."""

from __future__ import annotations

import pytest

from lab.errors import PayloadTooLarge
from psi_service.protocol import (
    Envelope,
    Frame,
    ProtocolError,
    build_request,
    build_response,
    check_setup,
    decode,
    encode,
    parse_request,
    parse_response,
)

psi = pytest.importorskip("private_set_intersection.python")


def _elements(n: int) -> list[bytes]:
    client = psi.client.CreateWithNewKey(True)
    return list(client.CreateRequest([f"x{i}" for i in range(n)]).encrypted_elements)


def _frame(**kw: object) -> Frame:
    base = dict(
        session="psis_1",
        nonce=b"n" * 16,
        project="p1",
        dataset="enterprise_registry",
        column="uscc",
        mode="intersection",
        declared_size=3,
        parts=1,
        request=build_request(_elements(3), reveal=True),
    )
    base.update(kw)
    return Frame(**base)  # type: ignore[arg-type]


def test_round_trip() -> None:
    frame = _frame()
    back = decode(encode(frame), max_bytes=1 << 20)
    assert back == frame
    assert len(parse_request(back.request, reveal=True)) == 3


def test_every_truncation_is_refused() -> None:
    data = encode(_frame())
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            decode(data[:cut], max_bytes=1 << 20)


def test_a_changed_payload_or_version_is_refused() -> None:
    data = bytearray(encode(_frame()))
    data[-40] ^= 1  # inside the request payload
    with pytest.raises(ProtocolError, match="digest"):
        decode(bytes(data), max_bytes=1 << 20)
    env = Envelope()
    env.ParseFromString(encode(_frame()))
    env.version = 2
    with pytest.raises(ProtocolError, match="version 2"):
        decode(env.SerializeToString(), max_bytes=1 << 20)
    with pytest.raises(PayloadTooLarge):
        decode(encode(_frame()), max_bytes=100)
    with pytest.raises(ProtocolError):
        decode(b"", max_bytes=100)


def test_requests_are_checked_before_they_reach_the_library() -> None:
    good = _elements(2)
    with pytest.raises(ProtocolError, match="reveal_intersection"):
        parse_request(build_request(good, reveal=False), reveal=True)
    with pytest.raises(ProtocolError, match="P-256"):
        parse_request(build_request([*good, b"\x04" + b"\x00" * 32], reveal=True), reveal=True)
    with pytest.raises(ProtocolError, match="P-256"):
        parse_request(build_request([good[0][:20]], reveal=True), reveal=True)
    with pytest.raises(ProtocolError, match="repeats"):
        parse_request(build_request([good[0], good[0]], reveal=True), reveal=True)
    with pytest.raises(ProtocolError):
        parse_request(b"\xff\xff\xff", reveal=True)
    assert parse_response(build_response(good)) == good


def test_operator_setups_are_sanity_checked() -> None:
    server = psi.server.CreateWithNewKey(True)
    items = [f"x{i}" for i in range(10)]
    for ds, kind in ((psi.DataStructure.GCS, "gcs"), (psi.DataStructure.BLOOM_FILTER, "bloom_filter")):
        assert check_setup(server.CreateSetupMessage(1e-6, 10, items, ds).SerializeToString()) == kind
    with pytest.raises(ProtocolError, match="GCS or a Bloom"):
        check_setup(server.CreateSetupMessage(1e-6, 10, items, psi.DataStructure.RAW).SerializeToString())
    bad = psi.ServerSetup()
    bad.gcs.div, bad.gcs.hash_range = 99, 10
    with pytest.raises(ProtocolError, match="out of range"):
        check_setup(bad.SerializeToString())
