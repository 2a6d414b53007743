"""The Studio v2 API: executions of a flow (any well-formed flow SID exists), created
``active``; fetch and list."""

from __future__ import annotations

import json
from typing import Any

from callqueue.local.emulator.core import (
    Form,
    Json,
    _ApiError,
    _first,
    _iso8601,
    _new_sid,
    _not_found,
    _Reply,
    _sid_pattern,
)
from callqueue.local.emulator.lists import _Listing
from callqueue.local.emulator.store import _AccountStore, _Stage, _Stored

_FLOW_SID = _sid_pattern("FW")


class _StudioApi(_AccountStore):
    """The account's Studio operations."""

    def create_execution(self, flow_sid: str, form: Form) -> _Reply:
        if not _FLOW_SID.fullmatch(flow_sid):
            raise _not_found(f"/Flows/{flow_sid}/Executions")
        for name in ("To", "From"):
            if not _first(form, name):
                raise _ApiError(400, 20001, f"Missing required parameter {name} in the post body")
        parameters: Any = {}
        raw_parameters = _first(form, "Parameters")
        if raw_parameters:
            try:
                parameters = json.loads(raw_parameters)
            except ValueError:
                parameters = None
            if not isinstance(parameters, dict):
                raise _ApiError(400, 20001, "Parameters must be a JSON object")
        now = self._clock()
        sid = _new_sid("FN")
        url = f"https://studio.twilio.com/v2/Flows/{flow_sid}/Executions/{sid}"
        resource: Json = {
            "sid": sid,
            "account_sid": self.account_sid,
            "flow_sid": flow_sid,
            "contact_channel_address": _first(form, "To"),
            "contact_sid": _new_sid("FC"),
            "flow_version": 1,
            "context": {"flow": {"data": parameters}},
            "status": "active",
            "date_created": _iso8601(now),
            "date_updated": _iso8601(now),
            "initiated_by": self.account_sid,
            "url": url,
            "links": {"steps": f"{url}/Steps", "execution_context": f"{url}/Context"},
        }
        self._store(
            self._executions, lambda seq: _Stored(seq, now, resource, (_Stage(now, "active"),))
        )
        return _Reply(201, resource, processed=True, sid=sid)

    def fetch_execution(self, flow_sid: str, sid: str, path: str) -> _Reply:
        stored = self._find(self._executions, sid, path)
        if stored.resource["flow_sid"] != flow_sid:
            raise _not_found(path)
        return _Reply(200, stored.resource)

    def list_executions(self, flow_sid: str, path: str, query: Form) -> _Reply:
        if not _FLOW_SID.fullmatch(flow_sid):
            raise _not_found(path)
        listing = _Listing(query)
        listing.equal("FlowSid", lambda e: e.resource["flow_sid"], value=flow_sid)
        listing.equal("status", lambda e: e.resource["status"])
        listing.created_between("DateCreatedFrom", "DateCreatedTo")
        url = f"https://studio.twilio.com/v2/Flows/{flow_sid}/Executions"
        return _Reply(
            200,
            listing.page_v2(
                url, "executions", self._newest_first(self._executions), lambda e: e.resource
            ),
        )
