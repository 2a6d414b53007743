"""The plan's cost in money: each row priced by what Twilio charges for, from the price table."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chalicelib.core.costs import SHIPPED, InvalidPrices, PriceTable
from chalicelib.core.schedule import Schedule
from chalicelib.intake.plan import plan

# Round prices, so the hand computation below is plain arithmetic.
TABLE: dict[str, Any] = {
    "currency": "EUR",
    "as_of": "2000-01",
    "source": "a test",
    "assumed_call_minutes": 2.5,
    "lookup_line_type": 0.01,
    "countries": {
        "US": {"sms_segment": 0.01, "mms": 0.02, "voice_minute": 0.1, "verify": 0.05},
        "GB": {"sms_segment": 0.04, "whatsapp": 0.07},
        "DE": {"sms_segment": 0.09, "voice_minute": 0.2},
        "BR": {"verify": 0.3},
    },
}
US, GB, DE, BR, JP = (
    "+14155550100",
    "+447400123456",
    "+4915123456789",
    "+5511987654321",
    ("+819012345678"),
)
SID = "VA" + "0" * 32
FLOW = "FW" + "0" * 32
COLUMNS = ["api", "To", "From", "Body", "MediaUrl", "Url", "PhoneNumber", "Fields"]
ROWS: list[dict[str, str]] = [
    {"To": US, "From": US, "Body": "x" * 160},  # US SMS, GSM-7, 1 segment
    {"To": US, "From": US, "Body": "x" * 161},  # 2 segments
    {"To": US, "From": US, "Body": "é" + "x" * 69},  # é is GSM-7: 1 segment
    {"To": US, "From": US, "Body": "✓" + "x" * 70},  # UCS-2, 71 units: 2 segments
    {"To": GB, "From": US, "Body": "hi"},  # GB SMS, 1 segment
    {"To": US, "From": US, "Body": "pic", "MediaUrl": "https://e.example/a.png"},  # US MMS
    {"To": GB, "From": US, "Body": "pic", "MediaUrl": "https://e.example/a.png"},  # no GB MMS
    {"To": f"whatsapp:{GB}", "From": f"whatsapp:{US}", "Body": "x" * 400},  # 1 message
    {"To": JP, "From": US, "Body": "hi"},  # JP is not in the table
    {"api": "calls", "To": US, "From": US, "Url": "https://e.example/t"},  # 2.5 min
    {"api": "calls", "To": DE, "From": US, "Url": "https://e.example/t"},
    {"api": "calls", "To": "sip:a@e.example", "From": US, "Url": "https://e.example/t"},
    {"api": "lookup", "PhoneNumber": DE, "Fields": "line_type_intelligence"},
    {"api": "lookup", "PhoneNumber": DE},  # a basic lookup is free
]
VERIFY = [{"api": "verify", "To": BR, "Channel": "sms", "ServiceSid": SID}]
STUDIO = [{"api": "studio", "To": US, "From": US, "FlowSid": FLOW}]


def _csv(rows: list[dict[str, str]]) -> io.BytesIO:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*COLUMNS, "Channel", "ServiceSid", "FlowSid"])
    writer.writeheader()
    writer.writerows(rows)
    return io.BytesIO(out.getvalue().encode())


def _cost(rows: list[dict[str, str]]) -> dict[str, Any]:
    result = plan(_csv(rows), "csv", Schedule(10, 60), prices=PriceTable.parse(TABLE))
    assert result.rejected == 0, result.rejects
    return result.cost.to_json()


def test_cost_of_a_known_file_is_the_hand_computation() -> None:
    cost = _cost(ROWS + VERIFY + STUDIO)
    d = Decimal
    us_sms = (1 + 2 + 1 + 2) * d("0.01")
    gb_sms = 1 * d("0.04")
    us_mms = d("0.02")
    gb_whatsapp = d("0.07")
    us_call = d("2.5") * d("0.1")
    de_call = d("2.5") * d("0.2")
    lookup = d("0.01")
    br_verify = d("0.3")
    expected = us_sms + gb_sms + us_mms + gb_whatsapp + us_call + de_call + lookup + br_verify
    assert cost["currency"] == "EUR"
    assert d(str(cost["total"])) == expected == d("1.25")
    lines = {(x["api"], x["kind"], x["country"]): (x["rows"], x["units"]) for x in cost["lines"]}
    assert lines == {
        ("messages", "sms_segment", "US"): (4, 6.0),
        ("messages", "sms_segment", "GB"): (1, 1.0),
        ("messages", "mms", "US"): (1, 1.0),
        ("messages", "whatsapp", "GB"): (1, 1.0),
        ("calls", "voice_minute", "US"): (1, 2.5),
        ("calls", "voice_minute", "DE"): (1, 2.5),
        ("lookup", "lookup_line_type", "*"): (1, 1.0),
        ("lookup", "lookup_basic", "*"): (1, 1.0),
        ("verify", "verify", "BR"): (1, 1.0),
    }
    assert cost["assumed_call_minutes"] == 2.5


def test_rows_the_table_cannot_price_are_counted_never_zero() -> None:
    cost = _cost(ROWS + STUDIO)
    unpriced = {(x["api"], x["kind"], x["country"]): x["rows"] for x in cost["unpriced"]}
    assert unpriced == {
        ("messages", "mms", "GB"): 1,
        ("messages", "sms_segment", "JP"): 1,
        ("calls", "voice_minute", "unknown"): 1,
        ("studio", "execution", "unknown"): 1,
    }
    assert cost["unpriced_rows"] == 4


def test_the_shipped_table_is_dated_sourced_and_prices_common_countries() -> None:
    prices = PriceTable.load()
    assert prices.as_of and "Twilio" in prices.source and "pproximate" in prices.note
    for country in ("US", "CA", "GB", "DE", "FR", "IN", "BR", "AU"):
        assert {"sms_segment", "voice_minute", "verify", "whatsapp"} <= set(
            prices.countries[country]
        )
    assert prices.lookup_line_type is not None
    # The plan uses it when no table is given.
    result = plan(_csv(ROWS[:1]), "csv", Schedule(10, 60))
    assert result.cost.to_json()["total"] == float(prices.countries["US"]["sms_segment"])


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ([], "JSON object"),
        ({"countries": {}}, "countries"),
        ({"countries": {"usa": {"sms_segment": 1}}}, "countries.usa"),
        ({"countries": {"US": {"sms": 1}}}, "unknown sms"),
        ({"countries": {"US": {"sms_segment": -1}}}, "countries.US.sms_segment"),
        ({"countries": {"US": {"sms_segment": "lots"}}}, "countries.US.sms_segment"),
        ({"countries": {"US": {"sms_segment": True}}}, "countries.US.sms_segment"),
        ({"countries": {"US": {"sms_segment": "NaN"}}}, "countries.US.sms_segment"),
        ({"countries": {"US": {}}, "currency": 1}, "currency"),
    ],
)
def test_a_bad_price_table_is_refused_naming_the_field(table: Any, named: str) -> None:
    with pytest.raises(InvalidPrices, match=named):
        PriceTable.parse(table, "mine.json")


def test_a_price_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text("{nope")
    with pytest.raises(InvalidPrices, match=r"p\.json"):
        PriceTable.load(path)
    path.write_text(json.dumps(TABLE))
    assert PriceTable.load(path).currency == "EUR"
    assert SHIPPED.exists()


def test_plan_command_shows_the_cost_and_refuses_a_bad_table_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from callqueue.cli import main

    source = tmp_path / "campaign.csv"
    source.write_bytes(_csv(ROWS).getvalue())
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(TABLE))

    assert main(["plan", str(source), "--prices", str(prices)]) == 0
    out = capsys.readouterr().out
    # 0.06 + 0.04 + 0.02 + 0.07 + 0.25 + 0.5 + 0.01, the hand computation less Verify.
    assert "estimated cost: 0.9500 EUR (prices as of 2000-01" in out
    assert "calls to DE: 1 rows, 2.5 minute(s), assumed voice_minute x 0.2 = 0.5000 EUR" in out
    assert "not in the total: 3 rows with no price:" in out and "to JP" in out

    assert main(["plan", str(source), "--json", "--prices", str(prices)]) == 0
    assert json.loads(capsys.readouterr().out)["cost"]["total"] == 0.95

    prices.write_text(json.dumps({"countries": {"US": {"sms_segment": "lots"}}}))
    assert main(["plan", str(source), "--prices", str(prices)]) == 2
    err = capsys.readouterr().err
    assert "countries.US.sms_segment: 'lots' is not a number" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
