"""C2SP signed-note, tlog-checkpoint and tlog-cosignature formats, byte for byte."""

from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lab.shared.standalone import trusted_log_keys, verify_checkpoint
from witness.note import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    cosignature_message,
    open_note,
    split_note,
)

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
SOFA_ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")


def test_signed_note_spec_example_verifies_and_tampering_fails() -> None:
    v = Verifier.from_vkey(SPEC_VKEY)
    assert v.vkey == SPEC_VKEY and v.key_id.hex() == "530d903a" and v.sig_type == ED25519
    text, good = open_note(SPEC_NOTE, [v])
    assert text == "This is an example message.\n" and good == {v: 0}
    with pytest.raises(NoteError, match="does not verify"):
        open_note(SPEC_NOTE.replace("example message", "exemplary message"), [v])


def test_unknown_keys_are_ignored_and_no_known_signature_rejects() -> None:
    other = Signer("example.com/foo", ED25519, Ed25519PrivateKey.generate()).verifier  # same name, other id
    with pytest.raises(NoteError, match="no signature from a trusted key"):
        open_note(SPEC_NOTE, [other])
    extra = SPEC_NOTE + Signer("someone/else", ED25519, Ed25519PrivateKey.generate()).sign_line("x\n")
    assert open_note(extra, [Verifier.from_vkey(SPEC_VKEY)])[0] == "This is an example message.\n"


def test_key_id_is_sha256_of_name_newline_type_key() -> None:
    key = Ed25519PrivateKey.generate()
    pub = Signer("a.example/log", ED25519, key).verifier.public
    assert (
        Signer("a.example/log", ED25519, key).verifier.key_id
        == hashlib.sha256(b"a.example/log\n\x01" + pub).digest()[:4]
    )
    assert (
        Signer("a.example/w", COSIGNATURE_V1, key).verifier.key_id
        == hashlib.sha256(b"a.example/w\n\x04" + pub).digest()[:4]
    )
    with pytest.raises(NoteError):
        Verifier.from_vkey(SPEC_VKEY.replace("530d903a", "530d903b"))  # key ID must match the key


def test_checkpoint_text_is_byte_exact() -> None:
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, SOFA_ROOT)
    assert (
        cp.text() == "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    assert Checkpoint.parse(cp.text()) == cp
    for bad in (
        "o\n012\nAAAA\n",
        "o\n1\n",
        "o\n1\n" + base64.b64encode(b"short").decode() + "\n",
        "o\n-1\nx\n",
    ):
        with pytest.raises(NoteError):
            Checkpoint.parse(bad)


def test_cosignature_v1_message_and_layout() -> None:
    text = Checkpoint("example.com/behind-the-sofa", 20852163, SOFA_ROOT).text()
    assert cosignature_message(text, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    key = Ed25519PrivateKey.generate()
    w = Signer("witness.example.com/w1", COSIGNATURE_V1, key)
    line = w.sign_line(text, 1679315147)
    assert line.startswith("\u2014 witness.example.com/w1 ") and line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[2])
    assert len(raw) == 4 + 8 + 64 and raw[:4] == w.verifier.key_id
    assert struct.unpack(">Q", raw[4:12])[0] == 1679315147
    Ed25519PublicKey.from_public_bytes(w.verifier.public).verify(
        raw[12:], cosignature_message(text, 1679315147)
    )
    log = Signer("example.com/behind-the-sofa", ED25519, Ed25519PrivateKey.generate())
    note = text + "\n" + log.sign_line(text) + line
    assert split_note(note)[0] == text
    assert open_note(note, [w.verifier])[1] == {w.verifier: 1679315147}
    # the standalone verifier (a copy an auditor can run alone) agrees
    keys = trusted_log_keys([log.verifier.vkey])
    assert verify_checkpoint(note, keys, [w.verifier.vkey], 1)[0]
    assert not verify_checkpoint(
        note, keys, [w.verifier.vkey, Signer("x/y", COSIGNATURE_V1, key).verifier.vkey], 2
    )[0]
    assert not verify_checkpoint(note.replace("20852163", "20852164"), keys, [], 0)[0]


def test_witness_package_imports_nothing_of_the_lab_but_the_shared_module() -> None:
    code = (
        "import sys, witness, witness.core, witness.server, witness.state, witness.note, witness.__main__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lab', 'sqlalchemy', 'fastapi', "
        "'psi_service', 'he_compute') and m != 'lab' and not m.startswith('lab.shared'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_examples_in_docs_ledger_verify() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ledger.md").read_text(encoding="utf-8")
    blocks = doc.split("```")[1::2]
    note = next(b for b in blocks if b.startswith("\nlab.chongming.example/ledger\n8\n")).lstrip("\n")
    cosig = next(b for b in blocks if b.startswith("\n\u2014 witness.district-bdc.example/w1")).lstrip("\n")
    message = next(b for b in blocks if b.startswith("\ncosignature/v1\n")).lstrip("\n")
    request = next(b for b in blocks if "add-checkpoint" in b).split("\n\n", 1)[1]
    log = Verifier.from_vkey(
        "lab.chongming.example/ledger+09aec74c+ARmIF1Xja9yluckxbQ8caAz+QX3hifBKax1wsrJvIs8o"
    )
    wit = Verifier.from_vkey(
        "witness.district-bdc.example/w1+60bcceed+BIunhS26K2w5xCJNsNvolFQG5oq1NCPdWTwRXTXxJ/0R"
    )
    text, _ = open_note(note, [log])
    assert Checkpoint.parse(text).size == 8
    assert open_note(note + cosig, [wit])[1] == {wit: 1764806400}
    assert cosignature_message(text, 1764806400) == message.encode()
    assert request.startswith("old 6\n") and request.endswith(note)
    # the example log's leaves are the bytes "entry 0" .. "entry 7": root and proof recompute exactly
    from lab.shared import merkle

    leaves = [merkle.leaf_hash(f"entry {i}".encode()) for i in range(8)]
    assert Checkpoint.parse(text).root == merkle.root_of(leaves)
    proof = [base64.b64decode(x) for x in request.split("\n\n")[0].split("\n")[1:]]
    assert proof == merkle.consistency_proof(leaves, 6)
    assert merkle.verify_consistency(6, 8, proof, merkle.root_of(leaves[:6]), merkle.root_of(leaves))


@pytest.mark.parametrize(
    "module", ["witness.note", "lab.shared.standalone", "lab.shared.certificates", "lab.shared.merkle"]
)
def test_doctests_pass(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
