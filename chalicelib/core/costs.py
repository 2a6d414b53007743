"""What a file will cost in money, estimated before it is sent, from a table of prices.

The table (prices.json beside this module, or the user's own) is dated and approximate: list
prices by destination country for an SMS segment, an MMS, a WhatsApp message, a minute of an
outbound call and a Verify verification, and one global price for a Lookup with line type
intelligence. A row is priced by what Twilio charges for: a message's segments (so a UCS-2 body
costs its doubled segments), a call's minutes (an assumed length, since nobody knows it before
the call), a Lookup's package, a verification. A row the table cannot price (a country it does
not list, a `sip:` address, a Studio execution) is counted and said, never priced at zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, Inexact, InvalidOperation, Rounded, localcontext
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import phonenumbers

from chalicelib.core.records import CallRequest, number_in
from chalicelib.core.segments import message_cost
from chalicelib.errors import CallqueueError

SHIPPED: Final = Path(__file__).with_name("prices.json")
# The price names a country may have, and what each one is per.
KINDS: Final = {
    "sms_segment": "SMS segment",
    "mms": "MMS",
    "whatsapp": "WhatsApp message",
    "voice_minute": "call minute",
    "verify": "verification",
}


class InvalidPrices(CallqueueError, ValueError):
    """A price table that cannot be read: the message names the file and the field."""


@dataclass(frozen=True)
class PriceTable:
    currency: str
    as_of: str
    source: str
    note: str
    assumed_call_minutes: Decimal
    lookup_line_type: Decimal | None
    countries: dict[str, dict[str, Decimal]]

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        """The table in `path` (the shipped one when None). Raises InvalidPrices."""
        path = path or SHIPPED
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidPrices(f"{path}: not a readable JSON price table ({error})") from None
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, origin: str = "prices") -> PriceTable:
        if not isinstance(data, dict):
            raise InvalidPrices(f"{origin}: a price table is a JSON object")
        countries = data.get("countries")
        if not isinstance(countries, dict) or not countries:
            raise InvalidPrices(f"{origin}: countries must be an object of country codes")
        parsed: dict[str, dict[str, Decimal]] = {}
        for code, prices in countries.items():
            where = f"{origin}: countries.{code}"
            if not (isinstance(code, str) and len(code) == 2 and code.isascii() and code.isupper()):
                raise InvalidPrices(f"{where}: not a two-letter country code such as US")
            if not isinstance(prices, dict):
                raise InvalidPrices(f"{where}: must be an object of prices")
            unknown = sorted(set(prices) - set(KINDS))
            if unknown:
                raise InvalidPrices(
                    f"{where}: unknown {', '.join(unknown)}; known: {', '.join(KINDS)}"
                )
            parsed[code] = {
                kind: _price(value, f"{where}.{kind}") for kind, value in prices.items()
            }
        lookup = data.get("lookup_line_type")
        return cls(
            currency=_text(data, "currency", origin, "USD"),
            as_of=_text(data, "as_of", origin, "undated"),
            source=_text(data, "source", origin, "not given"),
            note=_text(data, "note", origin, ""),
            assumed_call_minutes=_price(
                data.get("assumed_call_minutes", 1), f"{origin}: assumed_call_minutes"
            ),
            lookup_line_type=None if lookup is None else _price(lookup, f"{origin}: lookup"),
            countries=parsed,
        )


def _text(data: dict[str, Any], name: str, origin: str, default: str) -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise InvalidPrices(f"{origin}: {name} must be a string")
    return value


def _price(value: Any, where: str) -> Decimal:
    # Read through str so 0.0083 is the decimal 0.0083, not the float nearest it.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidPrices(f"{where}: {value!r:.40} is not a number")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise InvalidPrices(f"{where}: {value!r:.40} is not a number") from None
    if not price.is_finite() or price < 0:
        raise InvalidPrices(f"{where}: {value!r:.40} is not a price (a number of 0 or more)")
    return price


# The countries the row checks found while reading numbers, by E.164 number: a file of
# distinct recipients would otherwise have each number parsed twice (~40 µs a parse), once by
# its check and once for its price. Bounded: emptied when full.
_KNOWN_COUNTRIES: dict[str, str | None] = {}
_KNOWN_COUNTRIES_MAX: Final = 4096


def remember_country(e164: str, region: str | None) -> None:
    """Keep the country a check found for `e164` (its region code; None or "ZZ": none), so that
    country_of need not parse the number again."""
    if len(_KNOWN_COUNTRIES) >= _KNOWN_COUNTRIES_MAX:
        _KNOWN_COUNTRIES.clear()
    _KNOWN_COUNTRIES[e164] = region if region and region != "ZZ" else None


def forget_countries() -> None:
    """Forget the countries kept (for tests that change what phonenumbers answers)."""
    _KNOWN_COUNTRIES.clear()
    _country_read.cache_clear()


def country_of(number: str | None) -> str | None:
    """The ISO country of an E.164 number, with a channel prefix (`whatsapp:`) dropped; None for
    an address that is no phone number (sip:, client:) or a number no country claims."""
    # A number a row check has just read is kept, and looked up before the cache below: on a
    # file of distinct numbers that cache would only miss.
    if number is not None and number in _KNOWN_COUNTRIES:
        return _KNOWN_COUNTRIES[number]
    return _country_read(number)


# Reading a number's country takes phonenumbers ~40 µs; a file's rows repeat their numbers (a
# From, a list's retries), and the answer depends on the number alone.
@lru_cache(maxsize=4096)
def _country_read(number: str | None) -> str | None:
    if number is None:
        return None
    if number.startswith("whatsapp:"):
        number = number.removeprefix("whatsapp:")
    if not number.startswith("+"):
        return None
    if number in _KNOWN_COUNTRIES:
        return _KNOWN_COUNTRIES[number]
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


@dataclass(frozen=True)
class Charge:
    """What one row is charged for: `units` of the price `kind` in `country` ("*": any)."""

    kind: str
    country: str | None
    units: Decimal


def charge_of(request: CallRequest, prices: PriceTable) -> Charge | None:
    """None for a row the table has no kind of price for (a Studio execution)."""
    params = request.params
    number = number_in(params)
    country = country_of(number)
    if request.api == "messages":
        if number is not None and number.startswith("whatsapp:"):
            return Charge("whatsapp", country, Decimal(1))
        if params.get("MediaUrl"):
            return Charge("mms", country, Decimal(1))
        return Charge("sms_segment", country, Decimal(message_cost(params)))
    if request.api == "calls":
        return Charge("voice_minute", country, prices.assumed_call_minutes)
    if request.api == "verify":
        return Charge("verify", country, Decimal(1))
    if request.api == "lookup":
        fields = params.get("Fields", "")
        names = fields if isinstance(fields, list) else fields.split(",")
        wanted = "line_type_intelligence" in {n.strip().lower() for n in names}
        # A Lookup without a paid package (formatting and validity only) is free.
        return Charge("lookup_line_type" if wanted else "lookup_basic", "*", Decimal(1))
    return None


def unit_price(charge: Charge, prices: PriceTable) -> Decimal | None:
    if charge.kind == "lookup_basic":
        return Decimal(0)
    if charge.kind == "lookup_line_type":
        return prices.lookup_line_type
    if charge.country is None:
        return None
    return prices.countries.get(charge.country, {}).get(charge.kind)


# What a row is tallied by until the estimate is read: (api, kind, country, units), the kind
# "execution" for a row no price kind covers.
_Tally = tuple[str, str, str | None, Decimal | int]


def _tally_of(request: CallRequest, prices: PriceTable, segments: int | None) -> _Tally:
    """charge_of as a tally key, without building a Charge; `segments`: the Body's sms_segments
    count when the caller has it (None: counted here)."""
    api = request.api
    params = request.params
    number = number_in(params)
    country = country_of(number)
    if api == "messages":
        if number is not None and number.startswith("whatsapp:"):
            return api, "whatsapp", country, 1
        if params.get("MediaUrl"):
            return api, "mms", country, 1
        return api, "sms_segment", country, message_cost(params, segments)
    charge = charge_of(request, prices)
    if charge is None:
        return api, "execution", None, 0
    return api, charge.kind, charge.country, charge.units


@dataclass
class CostEstimate:
    """The running estimate of a file's rows: add each valid row's request.

    Rows are tallied per (api, kind, country, units) and priced when the estimate is read, so a
    file's rows cost a dictionary update each; the lines equal those of pricing row by row
    (tests/unit/test_cost_tally.py)."""

    prices: PriceTable
    # (api, kind, country) -> [rows, units]
    _priced: dict[tuple[str, str, str], list[Decimal]] = field(default_factory=dict, repr=False)
    # (api, kind, country or "unknown") -> rows
    _unpriced: dict[tuple[str, str, str], int] = field(default_factory=dict, repr=False)
    _pending: dict[_Tally, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def priced(self) -> dict[tuple[str, str, str], list[Decimal]]:
        self._settle()
        return self._priced

    @property
    def unpriced(self) -> dict[tuple[str, str, str], int]:
        self._settle()
        return self._unpriced

    # Mutable, so unhashable, as the dataclass it replaces the comparison of.
    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CostEstimate):
            return NotImplemented
        return (self.prices, self.priced, self.unpriced) == (
            other.prices,
            other.priced,
            other.unpriced,
        )

    def add(self, request: CallRequest, segments: int | None = None) -> None:
        """`segments`: the Body's sms_segments count, when the caller has counted it."""
        key = _tally_of(request, self.prices, segments)
        pending = self._pending
        pending[key] = pending.get(key, 0) + 1

    def _settle(self) -> None:
        # In the order the tallies came: a line's place is that of its first row, as row by row.
        pending, self._pending = self._pending, {}
        for (api, kind, country, units), rows in pending.items():
            if kind == "execution":
                self._count_unpriced((api, kind, "unknown"), rows)
                continue
            charge = Charge(kind, country, Decimal(units))
            if unit_price(charge, self.prices) is None:
                self._count_unpriced((api, kind, country or "unknown"), rows)
                continue
            key = (api, kind, country or "*")
            line = self._priced.get(key)
            if line is None:
                line = self._priced[key] = [Decimal(0), Decimal(0)]
            line[0] += rows
            line[1] = _added(line[1], charge.units, rows)

    def _count_unpriced(self, key: tuple[str, str, str], rows: int) -> None:
        self._unpriced[key] = self._unpriced.get(key, 0) + rows

    def amount(self, api: str, kind: str, country: str) -> Decimal:
        units = self.priced[(api, kind, country)][1]
        price = unit_price(Charge(kind, country, units), self.prices)
        return units * (price or Decimal(0))

    @property
    def total(self) -> Decimal:
        return sum((self.amount(*key) for key in self.priced), Decimal(0))

    @property
    def unpriced_rows(self) -> int:
        return sum(self.unpriced.values())

    def summary(self) -> dict[str, Any]:
        """The estimate in brief, as a job records it: the total, and what it leaves out."""
        return {
            "total": float(self.total),
            "currency": self.prices.currency,
            "unpriced_rows": self.unpriced_rows,
            "prices_as_of": self.prices.as_of,
        }

    def to_json(self) -> dict[str, Any]:
        p = self.prices
        lines = [
            {
                "api": api,
                "kind": kind,
                "country": country,
                "rows": int(rows),
                "units": float(units),
                "unit_price": float(unit_price(Charge(kind, country, units), p) or 0),
                "amount": float(self.amount(api, kind, country)),
            }
            for (api, kind, country), (rows, units) in sorted(self.priced.items())
        ]
        unpriced = [
            {"api": api, "kind": kind, "country": country, "rows": rows}
            for (api, kind, country), rows in sorted(self.unpriced.items())
        ]
        return {
            "currency": p.currency,
            "total": float(self.total),
            "lines": lines,
            "unpriced_rows": self.unpriced_rows,
            "unpriced": unpriced,
            "assumed_call_minutes": float(p.assumed_call_minutes),
            "prices": {"as_of": p.as_of, "source": p.source, "note": p.note},
        }


def _added(total: Decimal, units: Decimal, times: int) -> Decimal:
    """total + units added `times` times, as one multiplication when that rounds nothing (units
    are whole for all but a call's assumed minutes); else one addition at a time, as the
    context rounds each."""
    with localcontext() as exact:
        exact.traps[Inexact] = exact.traps[Rounded] = True
        try:
            return total + units * times
        except (Inexact, Rounded):
            pass
    for _ in range(times):
        total += units
    return total
