"""The cost estimate's tally, priced when read, against pricing each row as it is added (the
estimate's previous form), and a message's cost from a segment count its caller has against the
count made again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.costs import CostEstimate, PriceTable, charge_of, unit_price
from chalicelib.core.records import CallRequest
from chalicelib.core.segments import message_cost, sms_segments

# Bodies of every encoding: GSM-7 with its extension characters, UCS-2, emoji beyond the BMP.
_CHARS = st.sampled_from(["a", " ", "é", "€", "^", "[", "Ж", "中", "😀", "\n", "{"])
_BODIES = st.one_of(st.text(max_size=200), st.lists(_CHARS, max_size=330).map("".join), st.just(""))
_NUMBERS = st.sampled_from(
    [
        "+15005550006",
        "+447700900123",
        "+33612345678",
        "+81312345678",
        "whatsapp:+15005550006",
        "whatsapp:+447700900123",
        "sip:alice@example.com",
        "client:bob",
        "+999",
    ]
)
# Parameter values of every type a row's checks give: text, numbers, booleans, lists.
_VALUES = st.one_of(
    st.text(max_size=5), st.integers(), st.booleans(), st.lists(st.text(max_size=3), max_size=2)
)


@st.composite
def _requests(draw: Any) -> CallRequest:
    api = draw(st.sampled_from(["messages", "calls", "lookup", "verify", "studio"]))
    params: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(["StatusCallback", "Url", "x"]), _VALUES, max_size=2)
    )
    params[draw(st.sampled_from(["To", "PhoneNumber"]))] = draw(_NUMBERS)
    if draw(st.booleans()):
        params["Body"] = draw(st.one_of(_BODIES, _VALUES))
    if draw(st.booleans()):
        params["MediaUrl"] = draw(st.sampled_from(["", "https://e.com/a.png", ["u"], []]))
    if draw(st.booleans()):
        params["From"] = draw(_NUMBERS)
    if api == "lookup" and draw(st.booleans()):
        params["Fields"] = draw(
            st.sampled_from(["line_type_intelligence", " Line_Type_Intelligence,x", "", ["x"]])
        )
    return CallRequest(api, params)  # type: ignore[arg-type]


# Decimals at the edges of exact arithmetic: whole, fractional, 28 significant digits (where
# one multiplication and repeated additions round differently), exponents, negative zero.
_MINUTES = st.one_of(
    st.sampled_from(
        [
            "1",
            "0",
            "-0",
            "1.5",
            "1E+1",
            "0.1000",
            "0.3333333333333333333333333333",
            "83608.80165550497126954503904",
        ]
    ),
    st.decimals(min_value=0, max_value=10**6, allow_nan=False, allow_infinity=False).map(str),
)


@st.composite
def _tables(draw: Any) -> PriceTable:
    kinds = ["sms_segment", "mms", "whatsapp", "voice_minute", "verify"]
    countries = {
        code: {kind: "0.0079" for kind in draw(st.sets(st.sampled_from(kinds)))}
        for code in draw(st.sets(st.sampled_from(["US", "GB", "FR"]), min_size=1))
    }
    table: dict[str, Any] = {"countries": countries, "assumed_call_minutes": draw(_MINUTES)}
    if draw(st.booleans()):
        table["lookup_line_type"] = "0.008"
    return PriceTable.parse(table)


def _row_by_row(prices: PriceTable, requests: list[CallRequest]) -> tuple[Any, Any]:
    """The estimate's previous form: each row priced as it is added."""
    priced: dict[tuple[str, str, str], list[Decimal]] = {}
    unpriced: dict[tuple[str, str, str], int] = {}
    for request in requests:
        charge = charge_of(request, prices)
        price = None if charge is None else unit_price(charge, prices)
        if charge is None or price is None:
            kind = "execution" if charge is None else charge.kind
            where = "unknown" if charge is None or charge.country is None else charge.country
            key = (request.api, kind, where)
            unpriced[key] = unpriced.get(key, 0) + 1
            continue
        line = priced.setdefault(
            (request.api, charge.kind, charge.country or "*"), [Decimal(0)] * 2
        )
        line[0] += 1
        line[1] += charge.units
    return priced, unpriced


def _as_text(priced: dict[Any, list[Decimal]]) -> list[Any]:
    # As a checkpoint keeps them: exact, exponent and sign included; in order.
    return [(key, str(rows), str(units)) for key, (rows, units) in priced.items()]


@given(
    _tables(),
    st.lists(st.tuples(_requests(), st.booleans(), st.booleans()), max_size=40),
)
def test_a_tallied_estimate_has_the_lines_of_one_priced_row_by_row(
    prices: PriceTable, rows: list[tuple[CallRequest, bool, bool]]
) -> None:
    estimate = CostEstimate(prices)
    for request, counted, read_now in rows:
        body = request.params.get("Body")
        counts = counted and request.api == "messages" and isinstance(body, str)
        estimate.add(request, sms_segments(body)[1] if counts else None)  # type: ignore[arg-type]
        if read_now:  # a checkpoint reads the lines between rows
            assert estimate.unpriced_rows >= 0
    priced, unpriced = _row_by_row(prices, [request for request, _, _ in rows])
    assert _as_text(estimate.priced) == _as_text(priced)
    assert list(estimate.unpriced.items()) == list(unpriced.items())
    reference = CostEstimate(prices)
    reference.priced.update(priced)
    reference.unpriced.update(unpriced)
    assert estimate.to_json() == reference.to_json()
    assert str(estimate.total) == str(reference.total)
    assert estimate == reference


@given(_requests())
def test_a_message_cost_from_its_counted_segments_is_the_cost_counted_again(
    request: CallRequest,
) -> None:
    body = request.params.get("Body")
    counted = sms_segments(body)[1] if isinstance(body, str) else None
    assert message_cost(request.params, counted) == message_cost(request.params)


def test_call_minutes_that_round_are_added_a_row_at_a_time() -> None:
    # 4 x this, multiplied once, rounds to ...562; added four times it rounds to ...561.
    minutes = "83608.80165550497126954503904"
    prices = PriceTable.parse(
        {"countries": {"US": {"voice_minute": "0.014"}}, "assumed_call_minutes": minutes}
    )
    calls = [CallRequest("calls", {"To": "+15005550006"})] * 4
    estimate = CostEstimate(prices)
    for request in calls:
        estimate.add(request)
    assert _as_text(estimate.priced) == _as_text(_row_by_row(prices, calls)[0])
    assert (
        str(estimate.priced[("calls", "voice_minute", "US")][1]) == "334435.2066220198850781801561"
    )
