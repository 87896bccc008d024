"""Money conversions: decimal strings <-> integer base units, exact.

Behaviour matrix:

- parse: whole, fractional, padded, max precision; refused: signs, exponents, spaces, empty,
  too many digits under ``exact``; ``down`` truncates, ``up`` rounds to the next unit;
- format: shortest exact string, ``min_fraction`` padding, negatives, zero decimals;
- admission and money agree: a string the API admits as a positive decimal is exactly one
  that parses to more than zero base units; every admitted decimal parses;
- properties: ``parse(format(n)) == n`` for any n >= 0 and any decimals; ``format(parse(s))``
  is the canonical form of s; parsing is monotonic; prorate never exceeds the exact value and
  is within one unit of it.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from kommons.api.common import Decimal as DecimalText
from kommons.api.common import PositiveDecimal
from kommons.money import DEFAULT_DECIMALS, format_units, parse_units, prorate


def test_default_decimals_is_usdc_like() -> None:
    assert DEFAULT_DECIMALS == 6


@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("0", 6, 0),
        ("1", 6, 1_000_000),
        ("1.5", 6, 1_500_000),
        ("5.00", 6, 5_000_000),
        ("0.000001", 6, 1),
        ("0.0000010", 6, 1),
        ("007.25", 6, 7_250_000),
        ("1.23", 2, 123),
        ("1", 0, 1),
        ("1.000000000000000001", 18, 10**18 + 1),
    ],
)
def test_parse_exact(text: str, decimals: int, units: int) -> None:
    assert parse_units(text, decimals=decimals) == units


@pytest.mark.parametrize("text", ["", "-1", "+1", "1e3", " 1", "1.", ".5", "1,5", "five", "0x10"])
def test_parse_refuses_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="invalid amount"):
        parse_units(text)


def test_parse_refuses_excess_precision_unless_rounding() -> None:
    with pytest.raises(ValueError, match="more than 6 fractional digits"):
        parse_units("0.0000001")
    assert parse_units("0.0000019", rounding="down") == 1
    assert parse_units("0.0000011", rounding="up") == 2
    assert parse_units("0.0000010", rounding="up") == 1


@pytest.mark.parametrize(
    ("units", "kwargs", "text"),
    [
        (0, {}, "0"),
        (1, {}, "0.000001"),
        (1_500_000, {}, "1.5"),
        (5_000_000, {"min_fraction": 2}, "5.00"),
        (5_123_400, {"min_fraction": 2}, "5.1234"),
        (-2_500_000, {}, "-2.5"),
        (42, {"decimals": 0}, "42"),
    ],
)
def test_format(units: int, kwargs: dict[str, int], text: str) -> None:
    assert format_units(units, **kwargs) == text


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=0, max_value=18))
def test_parse_inverts_format(units: int, decimals: int) -> None:
    assert parse_units(format_units(units, decimals=decimals), decimals=decimals) == units


@given(
    st.integers(min_value=0, max_value=10**12),
    st.text(alphabet="0123456789", max_size=6),
)
def test_format_of_parse_is_canonical(whole: int, frac: str) -> None:
    text = f"{whole}.{frac}" if frac else str(whole)
    units = parse_units(text)
    assert Decimal(format_units(units)) == Decimal(text)
    assert format_units(units) == format_units(parse_units(format_units(units)))


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=10**15))
def test_parse_is_monotonic(a: int, b: int) -> None:
    assert (parse_units(format_units(a)) <= parse_units(format_units(b))) == (a <= b)


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10**7),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=1, max_value=10**6),
)
def test_prorate_rounds_down_by_less_than_one_unit(
    price: int, seconds: int, quantity: int, per: int
) -> None:
    exact = Fraction(price * seconds * quantity, 3600 * per)
    got = prorate(price, seconds, quantity=quantity, per=per)
    assert got <= exact < got + 1


def test_prorate_examples() -> None:
    assert prorate(3_600_000, 1) == 1_000
    assert prorate(1_000_000, 1800, quantity=500, per=1000) == 250_000
    with pytest.raises(ValueError, match="non-negative"):
        prorate(-1, 1)


POSITIVE: TypeAdapter[str] = TypeAdapter(PositiveDecimal)
NON_NEGATIVE: TypeAdapter[str] = TypeAdapter(DecimalText)
DECIMAL_TEXT = st.from_regex(r"\A[0-9]{1,12}(\.[0-9]{1,18})?\Z")


@given(DECIMAL_TEXT)
def test_admission_and_money_agree_on_positive_amounts(text: str) -> None:
    """What the API admits as a positive price is exactly what money parses to > 0."""
    positive = parse_units(text, decimals=18) > 0
    try:
        POSITIVE.validate_python(text)
        admitted = True
    except ValidationError:
        admitted = False
    assert admitted is positive


@given(st.text(alphabet="0123456789.-+e ", max_size=12))
def test_every_admitted_decimal_parses(text: str) -> None:
    try:
        NON_NEGATIVE.validate_python(text)
    except ValidationError:
        return
    assert parse_units(text, decimals=18) >= 0
