"""The Lookup v2 API: the emulator's validation of a phone number (Twilio has no magic numbers
for it) and a canned object for each data package asked for in Fields."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from callqueue.local.emulator.core import (
    Form,
    Json,
    _ApiError,
    _first,
    _iso8601,
    _nanp_format,
    _Reply,
)
from callqueue.local.emulator.magic_numbers import INVALID_NUMBER, LANDLINE_NUMBER
from callqueue.local.emulator.store import _AccountStore

# Calling codes the Lookup emulation recognises; a number with any other code is
# INVALID_COUNTRY_CODE.
_CALLING_CODES: Mapping[str, str] = {
    "1": "US", "7": "RU", "20": "EG", "27": "ZA", "30": "GR", "31": "NL", "32": "BE", "33": "FR",
    "34": "ES", "36": "HU", "39": "IT", "40": "RO", "41": "CH", "43": "AT", "44": "GB", "45": "DK",
    "46": "SE", "47": "NO", "48": "PL", "49": "DE", "52": "MX", "54": "AR", "55": "BR", "56": "CL",
    "57": "CO", "60": "MY", "61": "AU", "62": "ID", "63": "PH", "64": "NZ", "65": "SG", "66": "TH",
    "81": "JP", "82": "KR", "84": "VN", "86": "CN", "90": "TR", "91": "IN", "234": "NG",
    "254": "KE", "351": "PT", "353": "IE", "358": "FI", "852": "HK", "971": "AE", "972": "IL",
}  # fmt: skip

LOOKUP_FIELDS = (
    "validation",
    "caller_name",
    "sim_swap",
    "call_forwarding",
    "line_status",
    "line_type_intelligence",
    "identity_match",
    "reassigned_number",
    "sms_pumping_risk",
    "phone_number_quality_score",
    "pre_fill",
)


@dataclass(frozen=True)
class _ParsedNumber:
    raw: str
    e164: str | None
    calling_code: str | None
    country: str | None
    national_format: str | None
    errors: tuple[str, ...]


def parse_number(raw: str) -> _ParsedNumber:
    """Lookup's validation as the emulator does it (see the package docstring)."""
    if raw.startswith("+"):
        digits = raw[1:]
    else:
        # National format: Lookup's default country is North America.
        digits = re.sub(r"[\s().-]", "", raw)
        if digits.isdigit() and len(digits) == 10:
            digits = "1" + digits
    if not digits.isdigit():
        return _ParsedNumber(raw, None, None, None, None, ("NOT_A_NUMBER",))
    code = next((digits[:n] for n in (1, 2, 3) if digits[:n] in _CALLING_CODES), None)
    if code is None or digits.startswith("0"):
        return _ParsedNumber(raw, None, None, None, None, ("INVALID_COUNTRY_CODE",))
    national = digits[len(code) :]
    low, high = (10, 10) if code == "1" else (4, 14 - len(code) + 1)
    if len(national) < low:
        return _ParsedNumber(raw, None, None, None, None, ("TOO_SHORT",))
    if len(national) > high or len(digits) > 15:
        return _ParsedNumber(raw, None, None, None, None, ("TOO_LONG",))
    e164 = "+" + digits
    if e164 == INVALID_NUMBER:
        return _ParsedNumber(raw, None, None, None, None, ("INVALID_BUT_POSSIBLE",))
    national_format = _nanp_format(national) if code == "1" else national
    return _ParsedNumber(raw, e164, code, _CALLING_CODES[code], national_format, ())


class _LookupApi(_AccountStore):
    """The account's Lookup operation."""

    def fetch_phone_number(self, raw_number: str, query: Form) -> _Reply:
        requested = [f.strip() for f in (_first(query, "Fields") or "").split(",") if f.strip()]
        unknown = [f for f in requested if f not in LOOKUP_FIELDS]
        if unknown:
            raise _ApiError(400, 20001, f"Invalid value for Fields: {', '.join(unknown)}")
        number = parse_number(raw_number)
        shown = number.e164 or number.raw
        body: Json = {
            "calling_country_code": number.calling_code,
            "country_code": number.country,
            "phone_number": shown,
            "national_format": number.national_format,
            "valid": number.e164 is not None,
            "validation_errors": list(number.errors) or None,
            "url": f"https://lookups.twilio.com/v2/PhoneNumbers/{shown}",
        }
        for name in LOOKUP_FIELDS[1:]:
            body[name] = None
        if number.e164 is not None:
            packages = _lookup_packages(number.e164, number.country or "", self._clock())
            for name in requested:
                if name in packages:
                    body[name] = packages[name]
        return _Reply(200, body, processed=True)


def _lookup_packages(e164: str, country: str, now: float) -> dict[str, Any]:
    return {**_line_packages(e164), **_identity_and_risk_packages(country, now)}


def _line_packages(e164: str) -> dict[str, Any]:
    """The packages on the line and its carrier: caller_name to line_type_intelligence."""
    landline = e164 == LANDLINE_NUMBER
    carrier = "Callqueue Emulator " + ("Landline" if landline else "Wireless")
    return {
        "caller_name": {
            "caller_name": "EMULATED CALLER",
            "caller_type": "CONSUMER",
            "error_code": None,
        },
        "sim_swap": {
            "last_sim_swap": {
                "last_sim_swap_date": None,
                "swapped_period": "PT48H",
                "swapped_in_period": False,
            },
            "carrier_name": carrier,
            "mobile_country_code": "310",
            "mobile_network_code": "800",
            "error_code": None,
        },
        "call_forwarding": {"call_forwarding_enabled": False, "error_code": None},
        "line_status": {"status": "active", "error_code": None},
        "line_type_intelligence": {
            "mobile_country_code": "310",
            "mobile_network_code": "800",
            "carrier_name": carrier,
            "type": "landline" if landline else "mobile",
            "error_code": None,
        },
    }


def _identity_and_risk_packages(country: str, now: float) -> dict[str, Any]:
    """The packages on the owner and the risks: identity_match to pre_fill."""
    return {
        "identity_match": {
            "first_name_match": "no_data_available",
            "last_name_match": "no_data_available",
            "address_lines_match": "no_data_available",
            "city_match": "no_data_available",
            "state_match": "no_data_available",
            "postal_code_match": "no_data_available",
            "address_country_match": "no_data_available",
            "national_id_match": "no_data_available",
            "date_of_birth_match": "no_data_available",
            "summary_score": 0,
            "error_code": None,
            "error_message": None,
        },
        "reassigned_number": {
            "last_verified_date": _iso8601(now)[:10],
            "is_number_reassigned": "no_data_available",
            "error_code": None,
        },
        "sms_pumping_risk": {
            "carrier_risk_category": "low",
            "number_blocked": False,
            "number_blocked_date": None,
            "number_blocked_last_3_months": False,
            "sms_pumping_risk_score": 0,
            "error_code": None,
        },
        "phone_number_quality_score": {
            "carrier_risk_score": 0,
            "carrier_risk_category": "low",
            "quality_score": 100,
            "quality_category": "high",
            "error_code": None,
        },
        "pre_fill": {"country_code": country, "error_code": None},
    }
