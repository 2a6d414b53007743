from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callqueue.local.faults import FaultKind, FaultSpec


def test_faults_parse_all_kinds() -> None:
    spec = FaultSpec.parse("429=0.1,500=0.05,reset=0.05,lost-response=0.05,crash=0.05")

    assert spec == FaultSpec(
        too_many_requests=0.1, server_error=0.05, reset=0.05, lost_response=0.05, crash=0.05
    )
    assert spec.total == pytest.approx(0.3)


def test_faults_parse_tolerates_spaces_and_any_order() -> None:
    assert FaultSpec.parse(" crash = 0.5 , 429=0.25 ") == FaultSpec(
        too_many_requests=0.25, crash=0.5
    )


@pytest.mark.parametrize("text", ["", "   "])
def test_faults_parse_empty_means_no_faults(text: str) -> None:
    spec = FaultSpec.parse(text)

    assert spec == FaultSpec()
    assert spec.pick(0.0) is None


def test_faults_parse_accepts_sum_of_exactly_one_despite_rounding() -> None:
    spec = FaultSpec.parse("429=0.1,500=0.2,reset=0.7")

    assert spec.pick(0.999999) is FaultKind.RESET


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timeout=0.1", "unknown fault kind 'timeout'"),
        ("429=1.5", "between 0 and 1"),
        ("429=-0.1", "between 0 and 1"),
        ("429=inf", "between 0 and 1"),
        ("429=nan", "not a number"),
        ("429=lots", "'lots' for fault '429' is not a number"),
        ("429=0.6,500=0.5", "sum to 1.1, more than 1"),
        ("429", "malformed fault '429'"),
        ("429=", "malformed fault '429='"),
        ("=0.1", "malformed fault '=0.1'"),
        ("429=0.1,,500=0.1", "malformed fault ''"),
        ("429=0.1,429=0.2", "'429' given twice"),
    ],
)
def test_faults_parse_rejects_with_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as raised:
        FaultSpec.parse(text)

    assert isinstance(raised.value, ValueError)


def test_faults_constructor_validates_like_parse() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultSpec(crash=2.0)


def test_faults_pick_maps_draws_onto_kinds_in_order() -> None:
    spec = FaultSpec(
        too_many_requests=0.1, server_error=0.1, reset=0.1, lost_response=0.1, crash=0.1
    )

    assert [spec.pick(d) for d in (0.0, 0.15, 0.25, 0.35, 0.45, 0.5, 0.99)] == [
        FaultKind.TOO_MANY_REQUESTS,
        FaultKind.SERVER_ERROR,
        FaultKind.RESET,
        FaultKind.LOST_RESPONSE,
        FaultKind.CRASH,
        None,
        None,
    ]


def test_faults_pick_skips_zero_probability_kinds() -> None:
    spec = FaultSpec(crash=1.0)

    assert spec.pick(0.0) is FaultKind.CRASH
    assert spec.pick(0.999) is FaultKind.CRASH


def test_faults_str_lists_non_zero_kinds_in_parse_syntax() -> None:
    assert str(FaultSpec(server_error=0.05, crash=0.5)) == "500=0.05,crash=0.5"
    assert str(FaultSpec()) == ""


_probability = st.floats(min_value=0.0, max_value=0.2, allow_nan=False)


@given(_probability, _probability, _probability, _probability, _probability)
def test_faults_str_round_trips_through_parse(
    a: float, b: float, c: float, d: float, e: float
) -> None:
    spec = FaultSpec(too_many_requests=a, server_error=b, reset=c, lost_response=d, crash=e)

    assert FaultSpec.parse(str(spec)) == spec


@given(st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_faults_pick_frequency_matches_probability(draw: float) -> None:
    spec = FaultSpec(too_many_requests=0.25, crash=0.25)
    kind = spec.pick(draw)

    if draw < 0.25:
        assert kind is FaultKind.TOO_MANY_REQUESTS
    elif draw < 0.5:
        assert kind is FaultKind.CRASH
    else:
        assert kind is None


def test_faults_parse_the_processed_kinds_5xx_after_and_slow() -> None:
    spec = FaultSpec.parse("5xx-after=0.2,slow=0.3")

    assert spec == FaultSpec(server_error_after=0.2, slow=0.3)
    assert spec.kinds() == {FaultKind.SERVER_ERROR_AFTER, FaultKind.SLOW}
    assert str(spec) == "5xx-after=0.2,slow=0.3"


def test_faults_new_kinds_draw_after_the_old_ones() -> None:
    # An older spec's draws map onto the same kinds whatever was added after it.
    spec = FaultSpec(too_many_requests=0.5, server_error_after=0.25, slow=0.25)

    assert [spec.pick(d) for d in (0.4, 0.6, 0.8)] == [
        FaultKind.TOO_MANY_REQUESTS,
        FaultKind.SERVER_ERROR_AFTER,
        FaultKind.SLOW,
    ]
