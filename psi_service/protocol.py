"""The PSI wire protocol, version 1: openmined-psi messages inside a small envelope of our own.

Every PSI body on the wire — setup, request, response, cohort upload — is one ``lab.psi.v1.Envelope``
protobuf (``Content-Type: application/x-protobuf; messageType=lab.psi.v1.Envelope``)::

    syntax = "proto3";
    package lab.psi.v1;
    message Envelope {
      uint32 version = 1;        // protocol version, 1
      string session = 2;        // session id issued by POST /api/v1/projects/{project}/psi/sessions
      bytes  nonce = 3;          // the session's single-use nonce (client → lab)
      string project = 4;
      string dataset = 5;
      string column = 6;
      string mode = 7;           // intersection | cardinality | cohort
      uint64 declared_size = 8;  // items in the whole client set
      uint32 part = 9;           // 0-based index of this part of a chunked request
      uint32 parts = 10;         // number of parts
      bytes  request = 11;       // psi_proto.Request (openmined-psi)
      bytes  response = 12;      // psi_proto.Response
      bytes  setup = 13;         // psi_proto.ServerSetup
      bytes  proof = 14;         // cohort mode: batched DLEQ proof (psi_service.dleq)
      bytes  digest = 15;        // SHA-256(request ‖ response ‖ setup ‖ proof), serialized last
    }

The descriptor is built at import time (no generated code). Fields serialize in number order, so
``digest`` is always last: a body cut anywhere either fails to parse or has no valid digest, and is
refused with 400 before any work. Encrypted elements are compressed P-256 points (33 bytes,
``02``/``03`` prefix); anything else is refused before it reaches the library.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from lab.errors import BadRequest

VERSION = 1
CONTENT_TYPE = "application/x-protobuf"
MESSAGE_TYPE = "lab.psi.v1.Envelope"
MEDIA_TYPE = f"{CONTENT_TYPE}; messageType={MESSAGE_TYPE}"
POINT_BYTES = 33
MODES = ("intersection", "cardinality", "cohort")


class ProtocolError(BadRequest):
    """A PSI body that is malformed, truncated, of another version or inconsistent with its session."""

    code, title = "psi-protocol", "Malformed PSI message"


def _envelope_class() -> type[Message]:
    f = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="lab/psi/v1/envelope.proto", package="lab.psi.v1")
    fdp.syntax = "proto3"
    msg = fdp.message_type.add(name="Envelope")
    spec = [
        ("version", 1, f.TYPE_UINT32),
        ("session", 2, f.TYPE_STRING),
        ("nonce", 3, f.TYPE_BYTES),
        ("project", 4, f.TYPE_STRING),
        ("dataset", 5, f.TYPE_STRING),
        ("column", 6, f.TYPE_STRING),
        ("mode", 7, f.TYPE_STRING),
        ("declared_size", 8, f.TYPE_UINT64),
        ("part", 9, f.TYPE_UINT32),
        ("parts", 10, f.TYPE_UINT32),
        ("request", 11, f.TYPE_BYTES),
        ("response", 12, f.TYPE_BYTES),
        ("setup", 13, f.TYPE_BYTES),
        ("proof", 14, f.TYPE_BYTES),
        ("digest", 15, f.TYPE_BYTES),
    ]
    for name, number, kind in spec:
        msg.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    cls: type[Message] = message_factory.GetMessageClass(pool.FindMessageTypeByName(MESSAGE_TYPE))
    return cls


Envelope = _envelope_class()


@dataclass
class Frame:
    """A decoded envelope."""

    session: str = ""
    nonce: bytes = b""
    project: str = ""
    dataset: str = ""
    column: str = ""
    mode: str = ""
    declared_size: int = 0
    part: int = 0
    parts: int = 1
    request: bytes = b""
    response: bytes = b""
    setup: bytes = b""
    proof: bytes = b""

    @property
    def payload_digest(self) -> bytes:
        return hashlib.sha256(self.request + self.response + self.setup + self.proof).digest()


def encode(frame: Frame) -> bytes:
    """Serialize a frame (the digest is computed here)."""
    env: Any = Envelope()
    env.version = VERSION
    for name in (
        "session", "nonce", "project", "dataset", "column", "mode", "request", "response", "setup", "proof"
    ):  # fmt: skip
        setattr(env, name, getattr(frame, name))
    env.declared_size, env.part, env.parts = frame.declared_size, frame.part, frame.parts
    env.digest = frame.payload_digest
    data: bytes = env.SerializeToString(deterministic=True)
    return data


def decode(data: bytes, *, max_bytes: int) -> Frame:
    """Parse and check an envelope: size, version, digest (so truncation is detected)."""
    if len(data) > max_bytes:
        from lab.errors import PayloadTooLarge

        raise PayloadTooLarge(f"PSI message of {len(data)} bytes exceeds the limit of {max_bytes}")
    if not data:
        raise ProtocolError("empty PSI message")
    env: Any = Envelope()
    try:
        env.ParseFromString(data)
    except DecodeError:
        raise ProtocolError("PSI message does not parse (truncated or not a lab.psi.v1.Envelope)") from None
    if env.version != VERSION:
        raise ProtocolError(
            f"PSI protocol version {env.version} is not supported (this lab speaks {VERSION})",
            supported_versions=[VERSION],
        )
    frame = Frame(
        session=env.session,
        nonce=env.nonce,
        project=env.project,
        dataset=env.dataset,
        column=env.column,
        mode=env.mode,
        declared_size=env.declared_size,
        part=env.part,
        parts=env.parts,
        request=env.request,
        response=env.response,
        setup=env.setup,
        proof=env.proof,
    )
    if len(env.digest) != 32 or env.digest != frame.payload_digest:
        raise ProtocolError("PSI message digest does not match its content (truncated or corrupted)")
    return frame


def check_points(elements: list[bytes], what: str) -> None:
    """Every element must look like a compressed P-256 point."""
    for e in elements:
        if len(e) != POINT_BYTES or e[0] not in (2, 3):
            raise ProtocolError(f"{what} holds an element that is not a compressed P-256 point")


def parse_request(data: bytes, *, reveal: bool) -> list[bytes]:
    """The encrypted elements of an openmined-psi ``Request`` with the expected reveal flag."""
    import private_set_intersection.python as psi

    req = psi.Request()
    try:
        req.ParseFromString(data)
    except DecodeError:
        raise ProtocolError("the PSI request does not parse") from None
    if req.reveal_intersection != reveal:
        raise ProtocolError(
            f"the request asks reveal_intersection={req.reveal_intersection}, the mode needs {reveal}"
        )
    elements = list(req.encrypted_elements)
    check_points(elements, "the request")
    if len(set(elements)) != len(elements):
        raise ProtocolError("the request repeats encrypted elements (normalize and de-duplicate first)")
    return elements


def parse_response(data: bytes, *, distinct: bool = False) -> list[bytes]:
    """The encrypted elements of an openmined-psi ``Response`` (``distinct``: repeats refused)."""
    import private_set_intersection.python as psi

    resp = psi.Response()
    try:
        resp.ParseFromString(data)
    except DecodeError:
        raise ProtocolError("the PSI response does not parse") from None
    elements = list(resp.encrypted_elements)
    check_points(elements, "the response")
    if distinct and len(set(elements)) != len(elements):
        raise ProtocolError("the response repeats encrypted elements (refused)")
    return elements


def check_setup(data: bytes, *, max_hash_functions: int = 128) -> str:
    """Sanity-check an operator-supplied ``ServerSetup`` (cohort mode); returns its data structure."""
    import private_set_intersection.python as psi

    setup = psi.ServerSetup()
    try:
        setup.ParseFromString(data)
    except DecodeError:
        raise ProtocolError("the PSI setup does not parse") from None
    kind = setup.WhichOneof("data_structure")
    if kind == "gcs":
        if not (0 <= setup.gcs.div <= 62 and setup.gcs.hash_range > 0):
            raise ProtocolError("the GCS setup has parameters out of range")
    elif kind == "bloom_filter":
        bf = setup.bloom_filter
        if not (1 <= bf.num_hash_functions <= max_hash_functions and bf.bits):
            raise ProtocolError("the Bloom filter setup has parameters out of range")
    else:
        raise ProtocolError("the setup must be a GCS or a Bloom filter")
    return str(kind)


def build_request(elements: list[bytes], *, reveal: bool) -> bytes:
    """Serialize an openmined-psi ``Request``."""
    import private_set_intersection.python as psi

    req = psi.Request()
    req.reveal_intersection = reveal
    req.encrypted_elements.extend(elements)
    data: bytes = req.SerializeToString()
    return data


def build_response(elements: list[bytes]) -> bytes:
    """Serialize an openmined-psi ``Response``."""
    import private_set_intersection.python as psi

    resp = psi.Response()
    resp.encrypted_elements.extend(elements)
    data: bytes = resp.SerializeToString()
    return data
