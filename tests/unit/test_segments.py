"""Tests for chalicelib.core.segments: encodings, part limits and characters at part edges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    sms_segments,
    sms_segments_by_unit,
)


def test_sms_segments_alphabet_sizes() -> None:
    # 128 code points in the basic table, one of which is the escape to the extension table.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


def test_sms_segments_empty_body_is_zero() -> None:
    assert sms_segments("") == ("GSM-7", 0)


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)]
)
def test_sms_segments_gsm7_limits(length: int, segments: int) -> None:
    assert sms_segments("a" * length) == ("GSM-7", segments)


@pytest.mark.parametrize(("length", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3)])
def test_sms_segments_ucs2_limits(length: int, segments: int) -> None:
    assert sms_segments("ж" * length) == ("UCS-2", segments)


def test_sms_segments_gsm7_accents_and_symbols_stay_gsm7() -> None:
    assert sms_segments("Ça va? 5€ à Zürich ¿Si! ΔΩ @£$¥ {[~]}^|\\ äöñüà") == ("GSM-7", 1)
    assert sms_segments("Ça coûte 5€") == ("UCS-2", 1)


@pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
def test_sms_segments_extension_characters_take_two_septets(char: str) -> None:
    assert sms_segments(char * 80) == ("GSM-7", 1)
    assert sms_segments(char * 81) == ("GSM-7", 2)


def test_sms_segments_escape_pair_is_not_split_across_parts() -> None:
    # 152 septets then a two-septet character: the pair moves to the next part.
    assert sms_segments("a" * 152 + "€" + "a" * 7) == ("GSM-7", 2)
    assert sms_segments("a" * 152 + "€" + "a" * 152) == ("GSM-7", 3)
    assert sms_segments("a" * 151 + "€" + "a" * 153) == ("GSM-7", 2)


def test_sms_segments_one_non_gsm_character_switches_to_ucs2() -> None:
    assert sms_segments("a" * 100) == ("GSM-7", 1)
    assert sms_segments("a" * 99 + "ç") == ("UCS-2", 2)


def test_sms_segments_counts_utf16_code_units() -> None:
    assert sms_segments("😀" * 35) == ("UCS-2", 1)
    assert sms_segments("😀" * 36) == ("UCS-2", 2)


def test_sms_segments_surrogate_pair_is_not_split_across_parts() -> None:
    assert sms_segments("a" * 66 + "😀" + "a" * 5) == ("UCS-2", 2)
    assert sms_segments("a" * 66 + "😀" + "a" * 66) == ("UCS-2", 3)


@given(st.text(max_size=400))
def test_sms_segments_bounds(body: str) -> None:
    encoding, segments = sms_segments(body)
    if encoding == "GSM-7":
        units = sum(2 if char in GSM7_EXTENSION else 1 for char in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    if units == 0:
        assert segments == 0
    elif units <= single:
        assert segments == 1
    else:
        # Plain division, plus at most one unit lost per part to a character moved whole.
        assert -(-units // part) <= segments <= -(-units // (part - 1))


# Bodies near the part edges, from each table and from beyond the BMP, in any mix.
_EDGE_CHARS = st.sampled_from(["a", "é", "€", "^", "Ж", "中", "😀", "\n", "\ud800"])


@given(
    st.one_of(
        st.text(max_size=500),
        st.lists(_EDGE_CHARS, max_size=480).map("".join),
        st.integers(0, 480).flatmap(lambda n: st.sampled_from(["a" * n, "Ж" * n, "€" * n])),
    )
)
def test_sms_segments_shortcuts_equal_the_count_by_unit(body: str) -> None:
    assert sms_segments(body) == sms_segments_by_unit(body)
