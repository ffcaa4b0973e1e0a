"""Chinese identifier formats: check characters, validation, construction and normalization.

Pure functions, no I/O. The PSI client and server both canonicalize identifiers with
:data:`NORMALIZERS`, so two spellings of the same identifier meet in the intersection.

Formats
-------
* **Unified social credit code** (统一社会信用代码, GB 32100-2015), 18 characters from
  ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (no I, O, S, V, Z): registration authority (1),
  organization type (1), administrative division (6 digits), organization code (9, GB 11714:
  8 body characters and their own check character), check character (1). The check
  character uses weights ``3**(i-1) mod 31`` for positions ``i = 1..17``.
* **Resident identity card number** (公民身份号码, GB 11643-1999), 18 characters: division (6),
  birth date ``YYYYMMDD`` (8), sequence (3; the last digit is odd for men, even for women),
  check character (ISO 7064 MOD 11-2, ``0-9`` or ``X``). Old 15-digit numbers (``YYMMDD``
  birth date, no check) are upgraded by :func:`upgrade_15_to_18`.
* **Mainland mobile number**: 11 digits, ``1[3-9]`` then nine digits.

Invariants
----------
* Every ``normalize_*`` function is idempotent and returns the canonical form or raises
  :class:`ValueError`; ``is_valid_*(normalize_*(s))`` always holds.
* Error messages never repeat an identifier in full (they may end up in logs): they show a
  masked form keeping its first and last characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date

__all__ = [
    "NORMALIZERS",
    "USCC_CHARSET",
    "is_valid_phone",
    "is_valid_resident_id",
    "is_valid_uscc",
    "make_resident_id",
    "make_uscc",
    "normalize_generic",
    "normalize_phone",
    "normalize_resident_id",
    "normalize_uscc",
    "org_code_check_char",
    "resident_id_check_char",
    "upgrade_15_to_18",
    "uscc_check_char",
]

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_RID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RID_CHECK = "10X98765432"
_DIGITS6 = re.compile(r"[0-9]{6}")
_PHONE = re.compile(r"1[3-9][0-9]{9}")
_SEPARATORS = str.maketrans("", "", " -\t")


def _mask(s: str) -> str:
    """Mask an identifier for error messages: ``'3101…12X, 18 chars'``."""
    if len(s) <= 8:
        return f"{len(s)} chars"
    return f"{s[:4]}…{s[-3:]}, {len(s)} chars"


# --- unified social credit code --------------------------------------------------------


def org_code_check_char(body8: str) -> str:
    """Check character of a GB 11714 organization code body (8 digits or capital letters).

    >>> org_code_check_char("M000100Y")
    '4'
    """
    if len(body8) != 8 or not all(c.isascii() and (c.isdigit() or c.isupper()) for c in body8):
        raise ValueError("an organization code body is 8 ASCII digits or capital letters")
    total = sum(
        (int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True)
    )
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def uscc_check_char(body17: str) -> str:
    """Check character (position 18) of a unified social credit code.

    >>> uscc_check_char("91350100M000100Y4")
    '3'
    """
    if len(body17) != 17 or any(c not in _USCC_VALUE for c in body17):
        raise ValueError(f"a USCC body is 17 characters from {USCC_CHARSET!r}")
    total = sum(_USCC_VALUE[c] * w for c, w in zip(body17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def _uscc_problem(s: str, *, org_code: bool) -> str | None:
    if len(s) != 18:
        return f"has {len(s)} characters, a USCC has 18"
    bad = sorted({c for c in s if c not in _USCC_VALUE})
    if bad:
        return f"contains characters outside the USCC alphabet: {''.join(bad)!r}"
    if not _DIGITS6.fullmatch(s[2:8]):
        return "positions 3-8 (administrative division) are not 6 digits"
    if org_code and org_code_check_char(s[8:16]) != s[16]:
        return "organization code (positions 9-17) fails its GB 11714 check"
    if uscc_check_char(s[:17]) != s[17]:
        return "check character (position 18) does not match"
    return None


def is_valid_uscc(s: str, *, org_code: bool = True) -> bool:
    """Whether ``s`` is a canonical unified social credit code with correct check characters.

    ``org_code=False`` skips the inner GB 11714 check of positions 9-17 (some codes issued
    to individual businesses do not satisfy it).

    >>> is_valid_uscc("91350100M000100Y43")
    True
    >>> is_valid_uscc("91350100M000100Y44")
    False
    """
    return _uscc_problem(s, org_code=org_code) is None


def make_uscc(reg_authority: str, org_type: str, division: str, org_body8: str) -> str:
    """Build a valid USCC from its parts, computing both check characters.

    >>> make_uscc("9", "1", "350100", "M000100Y")
    '91350100M000100Y43'
    """
    if len(reg_authority) != 1 or len(org_type) != 1:
        raise ValueError("registration authority and organization type are one character each")
    if not _DIGITS6.fullmatch(division):
        raise ValueError("a division code is 6 digits")
    body = f"{reg_authority}{org_type}{division}{org_body8}{org_code_check_char(org_body8)}"
    return body + uscc_check_char(body)


# --- resident identity number ----------------------------------------------------------


def resident_id_check_char(body17: str) -> str:
    """Check character (position 18) of a resident identity number (ISO 7064 MOD 11-2).

    >>> resident_id_check_char("11010519491231002")
    'X'
    """
    if len(body17) != 17 or not (body17.isascii() and body17.isdigit()):
        raise ValueError("a resident ID body is 17 ASCII digits")
    return _RID_CHECK[sum(int(c) * w for c, w in zip(body17, _RID_WEIGHTS, strict=True)) % 11]


def _birth_date(yyyymmdd: str) -> date | None:
    try:
        born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return None
    return born if born.year >= 1800 else None


def _resident_id_problem(s: str) -> str | None:
    if len(s) != 18:
        return f"has {len(s)} characters, a resident ID has 18"
    if not (s[:17].isascii() and s[:17].isdigit()) or s[17] not in "0123456789X":
        return "is not 17 digits followed by a digit or X"
    if s[0] == "0":
        return "division code cannot start with 0"
    if _birth_date(s[6:14]) is None:
        return "positions 7-14 are not a valid birth date"
    if resident_id_check_char(s[:17]) != s[17]:
        return "check character (position 18) does not match"
    return None


def is_valid_resident_id(s: str) -> bool:
    """Whether ``s`` is a canonical 18-character resident ID: digits, birth date, check character.

    >>> is_valid_resident_id("11010519491231002X")
    True
    >>> is_valid_resident_id("11010519491231002x")  # canonical form has a capital X
    False
    >>> is_valid_resident_id("110105194902300021")  # 30 February
    False
    """
    return _resident_id_problem(s) is None


def make_resident_id(division: str, birth: date, seq: int) -> str:
    """Build a valid resident ID; ``seq`` (0-999) is odd for men and even for women.

    >>> make_resident_id("110105", date(1949, 12, 31), 2)
    '11010519491231002X'
    """
    if not _DIGITS6.fullmatch(division) or division[0] == "0":
        raise ValueError("a division code is 6 digits, not starting with 0")
    if not 0 <= seq <= 999:
        raise ValueError("the sequence code is between 0 and 999")
    if birth.year < 1800:
        raise ValueError("birth year before 1800")
    body = f"{division}{birth:%Y%m%d}{seq:03d}"
    return body + resident_id_check_char(body)


def upgrade_15_to_18(s15: str) -> str:
    """Upgrade a first-generation 15-digit ID: insert the century and append the check character.

    The century is 19, except sequence codes 996-999 which were reserved for centenarians
    (born in the 1800s).

    >>> upgrade_15_to_18("110105491231002")
    '11010519491231002X'
    """
    if len(s15) != 15 or not (s15.isascii() and s15.isdigit()):
        raise ValueError(f"a 15-digit resident ID is 15 ASCII digits, got {_mask(s15)}")
    century = "18" if int(s15[12:15]) >= 996 else "19"
    body = f"{s15[:6]}{century}{s15[6:15]}"
    if _birth_date(body[6:14]) is None:
        raise ValueError(f"15-digit resident ID {_mask(s15)} has no valid birth date")
    return body + resident_id_check_char(body)


# --- phone -----------------------------------------------------------------------------


def is_valid_phone(s: str) -> bool:
    """Whether ``s`` is a canonical mainland mobile number (11 ASCII digits, ``1[3-9]…``).

    >>> is_valid_phone("13812345678"), is_valid_phone("12812345678"), is_valid_phone("+8613812345678")
    (True, False, False)
    """
    return _PHONE.fullmatch(s) is not None


# --- normalizers shared by the PSI client and server -----------------------------------


def _prepare(s: str) -> str:
    if not isinstance(s, str):
        raise TypeError(f"identifiers are str, got {type(s).__name__}")
    return unicodedata.normalize("NFKC", s).strip()


def normalize_uscc(s: str) -> str:
    """Canonical USCC: NFKC, upper case, spaces and hyphens removed, check characters verified.

    >>> normalize_uscc(" 91350100-m000100y43 ")
    '91350100M000100Y43'
    >>> normalize_uscc("91350100M000100Y44")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: not a valid unified social credit code (9135…Y44, 18 chars): check character ...
    """
    t = _prepare(s).upper().translate(_SEPARATORS)
    problem = _uscc_problem(t, org_code=True)
    if problem:
        raise ValueError(f"not a valid unified social credit code ({_mask(t)}): {problem}")
    return t


def normalize_resident_id(s: str) -> str:
    """Canonical 18-character resident ID: NFKC, capital X, 15-digit numbers upgraded, validated.

    >>> normalize_resident_id("11010519491231002x")
    '11010519491231002X'
    >>> normalize_resident_id("110105491231002")
    '11010519491231002X'
    """
    t = _prepare(s).upper().translate(_SEPARATORS)
    if len(t) == 15:
        t = upgrade_15_to_18(t)
    problem = _resident_id_problem(t)
    if problem:
        raise ValueError(f"not a valid resident ID ({_mask(t)}): {problem}")
    return t


def normalize_phone(s: str) -> str:
    """Canonical mobile number: digits only, country code 86 / +86 / 0086 removed, validated.

    An explicit foreign country code (``+1 …``, ``001 …``) is rejected rather than read as a
    mainland number.

    >>> normalize_phone("+86 138-1234-5678")
    '13812345678'
    >>> normalize_phone("0086 13812345678")
    '13812345678'
    """
    t = _prepare(s)
    digits = "".join(c for c in t if c in "0123456789")
    international = t.lstrip(" (").startswith("+") or digits.startswith("00")
    if international:
        digits = digits.removeprefix("00")
        if not digits.startswith("86"):
            raise ValueError(f"not a mainland mobile number ({_mask(digits)}): foreign country code")
        digits = digits[2:]
    elif len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if not is_valid_phone(digits):
        raise ValueError(f"not a valid mainland mobile number ({_mask(digits)}): expected 11 digits 1[3-9]…")
    return digits


def normalize_generic(s: str) -> str:
    """Unicode NFKC and surrounding whitespace removed; an empty result is an error.

    >>> normalize_generic("  ＡＢＣ１２３ ")
    'ABC123'
    """
    t = _prepare(s)
    if not t:
        raise ValueError("an identifier cannot be empty")
    return t


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "uscc": normalize_uscc,
    "resident_id": normalize_resident_id,
    "phone": normalize_phone,
    "generic": normalize_generic,
}
"""Normalizer per policy ``normalization`` value (see :class:`lab.catalog.policy.Normalization`)."""
