"""Identifier check characters, validation, construction and the shared PSI normalizers."""

from __future__ import annotations

import doctest
import random
from datetime import date, timedelta

import pytest

import lab.identifiers
from lab.catalog.policy import Normalization
from lab.identifiers import (
    NORMALIZERS,
    USCC_CHARSET,
    is_valid_phone,
    is_valid_resident_id,
    is_valid_uscc,
    make_resident_id,
    make_uscc,
    normalize_generic,
    normalize_phone,
    normalize_resident_id,
    normalize_uscc,
    org_code_check_char,
    resident_id_check_char,
    upgrade_15_to_18,
    uscc_check_char,
)

# Real, published unified social credit codes of well-known enterprises.
PUBLISHED_USCCS = [
    "91350100M000100Y43",  # the GB 32100-2015 style example
    "914403001922038216",
    "91440300708461136T",
    "91110000802100433B",
    "91110108551385082Q",
]
RID_EXAMPLE = "11010519491231002X"  # the GB 11643-1999 example


def test_doctests_pass() -> None:
    result = doctest.testmod(lab.identifiers, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 15
    assert result.failed == 0


# --- unified social credit code ---------------------------------------------------------


@pytest.mark.parametrize("code", PUBLISHED_USCCS)
def test_published_usccs_are_valid(code: str) -> None:
    assert is_valid_uscc(code)
    assert uscc_check_char(code[:17]) == code[17]
    assert org_code_check_char(code[8:16]) == code[16]


def test_uscc_every_wrong_check_char_is_rejected() -> None:
    code = PUBLISHED_USCCS[0]
    wrong = [c for c in USCC_CHARSET if c != code[17]]
    assert len(wrong) == 30
    assert not any(is_valid_uscc(code[:17] + c) for c in wrong)


def test_uscc_org_code_check_is_enforced_unless_disabled() -> None:
    code = PUBLISHED_USCCS[0]
    tampered = code[:16] + "5" + uscc_check_char(code[:16] + "5")
    assert not is_valid_uscc(tampered)
    assert is_valid_uscc(tampered, org_code=False)


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y4",  # 17 characters
        "91350100M000100Y433",  # 19 characters
        "91350100I000100Y43",  # I is not in the alphabet
        "9135010aM000100Y43",  # lower case
        "913501A0M000100Y43",  # division with a letter
        "",
    ],
)
def test_uscc_malformed_is_rejected(code: str) -> None:
    assert not is_valid_uscc(code)


def test_make_uscc_rebuilds_the_example_and_validates_parts() -> None:
    assert make_uscc("9", "1", "350100", "M000100Y") == "91350100M000100Y43"
    with pytest.raises(ValueError, match="6 digits"):
        make_uscc("9", "1", "3501", "M000100Y")
    with pytest.raises(ValueError, match="8 ASCII"):
        make_uscc("9", "1", "350100", "M000100")
    with pytest.raises(ValueError, match="one character"):
        make_uscc("91", "1", "350100", "M000100Y")


def test_uscc_org_code_check_maps_10_to_x_and_11_to_0() -> None:
    bodies = {org_code_check_char(f"{n:08d}") for n in range(2000)}
    assert {"X", "0"} <= bodies
    assert bodies <= set("0123456789X")


# --- resident ID --------------------------------------------------------------------------


def test_resident_id_example_and_centenarian_example() -> None:
    assert is_valid_resident_id(RID_EXAMPLE)
    assert resident_id_check_char(RID_EXAMPLE[:17]) == "X"
    assert is_valid_resident_id("440524188001010014")


def test_resident_id_every_wrong_check_char_is_rejected() -> None:
    wrong = [c for c in "0123456789X" if c != RID_EXAMPLE[17]]
    assert not any(is_valid_resident_id(RID_EXAMPLE[:17] + c) for c in wrong)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("11010519490230002", "30 February"),
        ("11010519491301002", "month 13"),
        ("11010517991231002", "before 1800"),
        ("01010519491231002", "division starting with 0"),
    ],
)
def test_resident_id_with_impossible_fields_is_rejected(body: str, reason: str) -> None:
    assert not is_valid_resident_id(body + resident_id_check_char(body)), reason


def test_resident_id_requires_canonical_form() -> None:
    assert not is_valid_resident_id(RID_EXAMPLE.lower())
    assert not is_valid_resident_id(" " + RID_EXAMPLE)
    assert not is_valid_resident_id("１１０１０５１９４９１２３１００２Ｘ")  # full-width digits


def test_upgrade_15_to_18() -> None:
    assert upgrade_15_to_18("110105491231002") == RID_EXAMPLE
    assert upgrade_15_to_18("440524800101001").startswith("44052419800101001")
    assert upgrade_15_to_18("440524800101996")[6:8] == "18"  # 996-999 were for centenarians
    with pytest.raises(ValueError, match="no valid birth date"):
        upgrade_15_to_18("110105491331002")
    with pytest.raises(ValueError, match="15 ASCII digits"):
        upgrade_15_to_18("11010549123100X")


def test_make_resident_id_encodes_gender_in_17th_digit() -> None:
    man = make_resident_id("310151", date(1980, 5, 17), 123)
    woman = make_resident_id("310151", date(1980, 5, 17), 124)
    assert int(man[16]) % 2 == 1 and int(woman[16]) % 2 == 0
    assert man[6:14] == "19800517"
    with pytest.raises(ValueError, match="between 0 and 999"):
        make_resident_id("310151", date(1980, 5, 17), 1000)
    with pytest.raises(ValueError, match="6 digits"):
        make_resident_id("31015", date(1980, 5, 17), 1)


# --- phones ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "valid"),
    [
        ("13812345678", True),
        ("19912345678", True),
        ("12812345678", False),
        ("1381234567", False),
        ("138123456789", False),
        ("23812345678", False),
        ("1381234567a", False),
        ("１３８１２３４５６７８", False),
    ],
)
def test_is_valid_phone(phone: str, valid: bool) -> None:
    assert is_valid_phone(phone) is valid


# --- normalizers ------------------------------------------------------------------------------


def test_normalizers_cover_every_policy_normalization() -> None:
    assert set(NORMALIZERS) == {n.value for n in Normalization}


@pytest.mark.parametrize(
    ("kind", "raw", "canonical"),
    [
        ("uscc", " 91350100m000100y43\n", "91350100M000100Y43"),
        ("uscc", "9135-0100-M000-100Y-43", "91350100M000100Y43"),
        ("uscc", "９１３５０１００Ｍ０００１００Ｙ４３", "91350100M000100Y43"),
        ("resident_id", "11010519491231002x", RID_EXAMPLE),
        ("resident_id", " 110105 19491231 002X ", RID_EXAMPLE),
        ("resident_id", "110105491231002", RID_EXAMPLE),
        ("phone", "138 1234 5678", "13812345678"),
        ("phone", "+86 138-1234-5678", "13812345678"),
        ("phone", "8613812345678", "13812345678"),
        ("phone", "0086-138-1234-5678", "13812345678"),
        ("phone", "(+86) １３８１２３４５６７８", "13812345678"),
        ("generic", "  ＡＢＣ－１ ", "ABC-1"),
        ("generic", "Ⅻ号", "XII号"),
    ],
)
def test_normalizers_canonicalize(kind: str, raw: str, canonical: str) -> None:
    normalize = NORMALIZERS[kind]
    assert normalize(raw) == canonical
    assert normalize(canonical) == canonical  # idempotent


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        ("uscc", "91350100M000100Y44", "check character"),
        ("uscc", "91350100M000100Y4", "has 17 characters"),
        ("resident_id", "110105194912310021", "check character"),
        ("resident_id", "1101051949123100", "has 16 characters"),
        ("phone", "12812345678", "mobile number"),
        ("phone", "+1 415 555 0100", "foreign country code"),
        ("phone", "001 415 555 0100", "foreign country code"),
        ("phone", "868613812345678", "mobile number"),
        ("generic", "   ", "cannot be empty"),
    ],
)
def test_normalizers_reject_invalid_input(kind: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NORMALIZERS[kind](raw)


def test_error_messages_do_not_repeat_the_identifier() -> None:
    bad = RID_EXAMPLE[:17] + "1"
    with pytest.raises(ValueError) as info:
        normalize_resident_id(bad)
    assert bad not in str(info.value)
    assert bad[:4] in str(info.value)


def test_normalizers_refuse_non_strings() -> None:
    with pytest.raises(TypeError):
        normalize_generic(12345)  # type: ignore[arg-type]


# --- property-style loops ------------------------------------------------------------------


def test_generated_resident_ids_round_trip_and_detect_single_errors() -> None:
    rng = random.Random(11643)
    for _ in range(400):
        born = date(1900, 1, 1) + timedelta(days=rng.randrange(0, 99 * 365))
        division = rng.choice(["310151", "310230", "110105", "440524"])
        seq = rng.randrange(0, 996)
        rid = make_resident_id(division, born, seq)
        assert is_valid_resident_id(rid)
        assert normalize_resident_id(rid.lower()) == rid
        assert upgrade_15_to_18(rid[:6] + rid[8:17]) == rid
        pos = rng.randrange(0, 17)
        digit = str((int(rid[pos]) + rng.randrange(1, 10)) % 10)
        assert resident_id_check_char(rid[:pos] + digit + rid[pos + 1 : 17]) != rid[17]


def test_generated_usccs_round_trip_and_detect_single_errors() -> None:
    rng = random.Random(32100)
    for _ in range(400):
        body = "".join(rng.choice(USCC_CHARSET) for _ in range(8))
        code = make_uscc("9", rng.choice("123"), f"{rng.randrange(110000, 660000):06d}", body)
        assert is_valid_uscc(code)
        assert normalize_uscc(code.lower()) == code
        pos = rng.randrange(0, 17)
        other = rng.choice(USCC_CHARSET.replace(code[pos], ""))
        assert uscc_check_char(code[:pos] + other + code[pos + 1 : 17]) != code[17]


def test_generated_phones_normalize_with_any_country_prefix() -> None:
    rng = random.Random(86)
    for _ in range(200):
        phone = f"1{rng.randrange(3, 10)}{rng.randrange(0, 10**9):09d}"
        assert is_valid_phone(phone)
        prefix = rng.choice(["", "86", "+86 ", "0086", "+86-"])
        assert normalize_phone(prefix + phone) == phone
