"""The Verify v2 API: verifications (any well-formed service SID exists), created ``pending``,
fetched by SID or by the To they were sent to."""

from __future__ import annotations

import re

from callqueue.local.emulator.core import (
    Form,
    Json,
    _ApiError,
    _first,
    _is_e164,
    _iso8601,
    _new_sid,
    _not_found,
    _Reply,
    _sid_pattern,
)
from callqueue.local.emulator.magic_numbers import INVALID_NUMBER, LANDLINE_NUMBER
from callqueue.local.emulator.store import _AccountStore, _Stage, _Stored

VERIFY_CHANNELS = ("sms", "call", "email", "whatsapp", "sna")

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_SERVICE_SID = _sid_pattern("VA")


class _VerifyApi(_AccountStore):
    """The account's Verify operations."""

    def create_verification(self, service_sid: str, form: Form) -> _Reply:
        if not _SERVICE_SID.fullmatch(service_sid):
            raise _not_found(f"/Services/{service_sid}/Verifications")
        to = _first(form, "To")
        channel = _first(form, "Channel")
        if not to:
            raise _ApiError(400, 60200, "Invalid parameter: To")
        if channel not in VERIFY_CHANNELS:
            raise _ApiError(400, 60200, "Invalid parameter: Channel")
        address_ok = _EMAIL.fullmatch(to) if channel == "email" else _is_e164(to)
        if not address_ok or to == INVALID_NUMBER:
            raise _ApiError(400, 60200, "Invalid parameter: To")
        if to == LANDLINE_NUMBER and channel in ("sms", "whatsapp"):
            raise _ApiError(400, 60205, "SMS is not supported by landline phone number")
        now = self._clock()
        sid = _new_sid("VE")
        lookup: Json = {}
        if channel != "email":
            lookup = {
                "carrier": {
                    "error_code": None,
                    "mobile_country_code": "310",
                    "mobile_network_code": "800",
                    "name": "Callqueue Emulator Wireless",
                    "type": "mobile",
                }
            }
        resource: Json = {
            "sid": sid,
            "service_sid": service_sid,
            "account_sid": self.account_sid,
            "to": to,
            "channel": channel,
            "status": "pending",
            "valid": False,
            "lookup": lookup,
            "amount": _first(form, "Amount"),
            "payee": _first(form, "Payee"),
            "send_code_attempts": [
                {"time": _iso8601(now), "channel": channel, "attempt_sid": _new_sid("VL")}
            ],
            "date_created": _iso8601(now),
            "date_updated": _iso8601(now),
            "sna": None,
            "url": f"https://verify.twilio.com/v2/Services/{service_sid}/Verifications/{sid}",
        }
        self._store(
            self._verifications,
            lambda seq: _Stored(seq, now, resource, (_Stage(now, "pending"),)),
        )
        return _Reply(201, resource, processed=True, sid=sid)

    def fetch_verification(self, service_sid: str, sid_or_to: str, path: str) -> _Reply:
        """By SID, or by the To it was sent to (the newest such verification of the service)."""
        if not _SERVICE_SID.fullmatch(service_sid):
            raise _not_found(path)
        for stored in self._newest_first(self._verifications):
            resource = stored.resource
            if resource["service_sid"] == service_sid and sid_or_to in (
                resource["sid"],
                resource["to"],
            ):
                return _Reply(200, resource)
        raise _not_found(path)
