"""GET /suppression and POST /suppression/import: the suppression list out as CSV (or JSON with
`?format=json`) and in from CSV text, checked whole as `callqueue suppression import` does it
(chalicelib.sending.suppression_csv): 400 with every bad line and nothing imported, else 200."""

from __future__ import annotations

from chalice.app import BadRequestError, Request, Response

from chalicelib.api.request_bodies import (
    MAX_BODY_BYTES,
    PayloadTooLargeError,
    current,
    raw_body_of,
)
from chalicelib.sending.suppression import SuppressionList
from chalicelib.sending.suppression_csv import BadLines, export_csv, iso_utc, read_import


class SuppressionApi:
    def __init__(self, suppressions: SuppressionList, default_region: str | None) -> None:
        self._list = suppressions
        self._region = default_region

    def export(self, request: Request | None) -> Response:
        query = current(request).query_params
        form = (query.get("format") if query else None) or "csv"
        entries = self._list.list()
        if form == "json":
            body = [
                {
                    "number": e.number,
                    "reason": e.reason,
                    "source": e.source,
                    "added_at": None if e.added_at is None else iso_utc(e.added_at),
                }
                for e in sorted(entries, key=lambda e: e.number)
            ]
            return Response(body={"suppressions": body}, status_code=200)
        if form != "csv":
            raise BadRequestError("`format` must be csv or json")
        return Response(
            body=export_csv(entries), status_code=200, headers={"Content-Type": "text/csv"}
        )

    def import_csv(self, request: Request | None) -> Response:
        raw = raw_body_of(current(request))
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"the body is over {MAX_BODY_BYTES} bytes; split the file")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequestError("the body is not UTF-8 text") from None
        try:
            entries = read_import(text, self._region)
        except BadLines as error:
            # Chalice's error body (Code, Message), with every bad line beside it.
            body = {
                "Code": "BadRequestError",
                "Message": f"{len(error.lines)} bad line(s); nothing imported",
                "bad_lines": [{"line": n, "error": why} for n, why in error.lines],
            }
            return Response(body=body, status_code=400)
        added = self._list.add_many(entries, source="import")
        return Response(body={"read": len(entries), "added": added}, status_code=200)
