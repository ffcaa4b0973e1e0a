"""The lab-approved CKKS parameter sets: the only ones a context may use.

Each set fixes the ring (``poly_modulus_degree`` N, so N/2 slots per ciphertext), the
coefficient-modulus chain and the scale (2^40). The number of *levels* is the number of
middle primes: every multiplication by a plaintext or a ciphertext consumes one (rescaling).

=================  =====  ==========================  ======  ===============================================
name               N      coefficient bits            levels  use
=================  =====  ==========================  ======  ===============================================
``ckks-8192``      8192   60, 40, 40, 60              2       linear scoring; lookups in 1- or 2-D tables
``ckks-8192-deep`` 8192   50, 40, 40, 40, 48          3       logistic scoring (degree-3 sigmoid); 3-D lookups
``ckks-16384``     16384  60, 40×7, 60                7       logistic with a degree-15 (or 5–13) sigmoid
=================  =====  ==========================  ======  ===============================================

Invariants: every set stays within the HomomorphicEncryption.org 128-bit bound for its N
(218 bits for 8192, 438 for 16384), and the last (special) prime is at least as large as the
middle ones, or key switching loses precision. ``ckks-8192`` with [60,40,40,60] has too few
levels for a degree-3 sigmoid after the dot product (``scale out of bounds``) — hence the
deep chain.

>>> get("ckks-8192").slots, get("ckks-8192").levels
(4096, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.errors import BadRequest

#: HomomorphicEncryption.org standard: largest total coefficient-modulus bits at 128-bit
#: classical security (ternary secrets), by ring dimension — the same table SEAL enforces.
MAX_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
SCALE_BITS = 40


@dataclass(frozen=True)
class ParamSet:
    """One approved CKKS parameter set."""

    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    max_context_bytes: int
    use: str
    scale_bits: int = SCALE_BITS

    @property
    def slots(self) -> int:
        """Values packed into one ciphertext: N/2."""
        return self.poly_modulus_degree // 2

    @property
    def levels(self) -> int:
        """Rescalings available to a fresh ciphertext (the middle primes)."""
        return len(self.coeff_mod_bit_sizes) - 2

    @property
    def total_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def max_ciphertext_bytes(self) -> int:
        """Upper bound of one serialized fresh ciphertext (two polynomials, all data primes) + framing."""
        data_primes = len(self.coeff_mod_bit_sizes) - 1
        return 2 * self.poly_modulus_degree * data_primes * 8 + 4096

    def check_secure(self) -> None:
        """Raise unless this set meets 128-bit security and the special-prime rule."""
        bound = MAX_BITS_128.get(self.poly_modulus_degree)
        if bound is None or self.total_bits > bound:
            raise BadRequest(f"{self.name}: {self.total_bits} coefficient bits exceed the 128-bit bound")
        middle = self.coeff_mod_bit_sizes[1:-1]
        if middle and self.coeff_mod_bit_sizes[-1] < max(middle):
            raise BadRequest(f"{self.name}: the special prime must be at least as large as the middle primes")

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "poly_modulus_degree": self.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(self.coeff_mod_bit_sizes),
            "scale_bits": self.scale_bits,
            "slots": self.slots,
            "levels": self.levels,
            "max_context_bytes": self.max_context_bytes,
            "use": self.use,
        }


APPROVED: dict[str, ParamSet] = {
    p.name: p
    for p in (
        ParamSet("ckks-8192", 8192, (60, 40, 40, 60), 4 << 20, "linear scoring, lookups in 1-2 dimensions"),
        ParamSet("ckks-8192-deep", 8192, (50, 40, 40, 40, 48), 6 << 20, "logistic scoring (degree 3)"),
        ParamSet(
            "ckks-16384",
            16384,
            (60, 40, 40, 40, 40, 40, 40, 40, 60),
            32 << 20,
            "logistic scoring (degree up to 15)",
        ),
    )
}
for _p in APPROVED.values():
    _p.check_secure()


def get(name: str) -> ParamSet:
    """The approved set called ``name`` (:class:`BadRequest` for any other)."""
    try:
        return APPROVED[name]
    except KeyError:
        raise BadRequest(
            f"parameter set {name!r} is not approved; use one of {', '.join(APPROVED)}",
            approved=list(APPROVED),
        ) from None


def match(poly_modulus_degree: int, coeff_mod_bit_sizes: list[int], scale_bits: float) -> ParamSet:
    """The approved set a parsed context uses, or :class:`BadRequest` naming what differs."""
    bits = tuple(coeff_mod_bit_sizes)
    bound = MAX_BITS_128.get(poly_modulus_degree)
    if bound is None or sum(bits) > bound:
        raise BadRequest(
            f"context parameters (N={poly_modulus_degree}, {sum(bits)} coefficient bits) "
            "fall below 128-bit security",
            poly_modulus_degree=poly_modulus_degree,
            coeff_mod_bit_sizes=list(bits),
        )
    for p in APPROVED.values():
        if p.poly_modulus_degree == poly_modulus_degree and p.coeff_mod_bit_sizes == bits:
            if abs(scale_bits - p.scale_bits) > 1e-9:
                raise BadRequest(f"context scale 2^{scale_bits:g} differs from the approved 2^{p.scale_bits}")
            return p
    raise BadRequest(
        f"context parameters (N={poly_modulus_degree}, coefficient bits {list(bits)}) "
        "are not an approved set",
        approved=list(APPROVED),
    )
