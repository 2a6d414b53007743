"""DynamoDB's on-demand units for one request to the local moto server (callqueue.local.cost_log),
from the sizes of the items it touched in moto's tables, as AWS bills them:

- a write: one unit per 1 KB of the larger of the item before and after (at least one), also
  when its condition fails; twice that in a transaction; and for each global index the item is
  in before or after, a write of its projected entry (two when its index key changed);
- a read: one unit per 4 KB read (a Query or a Scan: of all the items it read, whatever its
  projection), half for an eventually consistent read, twice in a transaction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
INDEX_OVERHEAD_BYTES = 100
REGION = "us-east-1"
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_SCANS = {"Query", "Scan"}


def value_size(value: Mapping[str, Any]) -> int:
    kind, data = next(iter(value.items()))
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(v) for k, v in data.items())
    return len(data.encode()) if isinstance(data, str) else len(data)


def size_of(item: Mapping[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _table(name: str) -> Any:
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables.get(name)


def _stored(table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
    table = _table(table_name)
    if table is None:
        return None
    hash_key = DynamoType(key[table.hash_key_attr])
    range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    try:
        item = table.get_item(hash_key, range_key)
    except Exception:  # noqa: BLE001 - a key moto refuses: the request failed as well
        return None
    return None if item is None else dict(item.to_json()["Attributes"])


def _key_of(table_name: str, item: Mapping[str, Any]) -> dict[str, Any]:
    table = _table(table_name)
    if table is None:
        return {}
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def _targets(operation: str, request: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(table, key) of each item a write request writes or checks."""
    if operation == "PutItem":
        return [(request["TableName"], _key_of(request["TableName"], request["Item"]))]
    if operation in ("UpdateItem", "DeleteItem"):
        return [(request["TableName"], request["Key"])]
    found = []
    if operation == "BatchWriteItem":
        for table, writes in request.get("RequestItems", {}).items():
            for write in writes:
                if "PutRequest" in write:
                    found.append((table, _key_of(table, write["PutRequest"]["Item"])))
                else:
                    found.append((table, write["DeleteRequest"]["Key"]))
    if operation == "TransactWriteItems":
        for entry in request.get("TransactItems", []):
            action = next(iter(entry.values()))
            key = action.get("Key") or _key_of(action["TableName"], action.get("Item", {}))
            found.append((action["TableName"], key))
    return found


def _index_units(
    table_name: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> int:
    table = _table(table_name)
    units = 0
    for index in getattr(table, "global_indexes", []):
        keys = index.schema_key_attrs
        old = before if before and all(k in before for k in keys) else None
        new = after if after and all(k in after for k in keys) else None
        entries = [e for e in (old, new) if e is not None]
        if not entries:
            continue
        moved = old is not None and new is not None and any(old[k] != new[k] for k in keys)
        if old is not None and new is not None and not moved:
            entries = [new]
        projection = (index.projection or {}).get("ProjectionType", "ALL")
        for entry in entries:
            projected = entry
            if projection != "ALL":
                kept = set(keys) | set(_key_of(table_name, entry))
                kept |= set((index.projection or {}).get("NonKeyAttributes", []))
                projected = {k: v for k, v in entry.items() if k in kept}
            units += math.ceil((size_of(projected) + INDEX_OVERHEAD_BYTES) / WRITE_UNIT_BYTES)
    return units


class DynamoUnits:
    """The units of one DynamoDB request: `after` once moto has answered it."""

    def __init__(self, operation: str, request: dict[str, Any]) -> None:
        self.operation = operation
        self._request = request
        self._targets = _targets(operation, request) if operation in _WRITES else []
        self._before = [_stored(table, key) for table, key in self._targets]
        self.write_units: dict[str, float] = {}
        self.read_units: dict[str, float] = {}
        self.written: list[tuple[str, int]] = []

    def after(self, ok: bool, response: bytes, again: Callable[[dict[str, Any]], Any]) -> None:
        factor = 2 if self.operation.startswith("Transact") else 1
        for (table, key), before in zip(self._targets, self._before, strict=True):
            after = _stored(table, key) if ok else before
            size = max(size_of(before), size_of(after))
            units = max(1, math.ceil(size / WRITE_UNIT_BYTES)) * factor
            if ok:
                units += _index_units(table, before, after) * factor
                if after is not None:
                    self.written.append((table, size_of(after)))
            self._add(self.write_units, table, units)
        if ok and self.operation in ("GetItem", "BatchGetItem", "TransactGetItems", *_SCANS):
            self._reads(response, again)

    def _reads(self, response: bytes, again: Callable[[dict[str, Any]], Any]) -> None:
        import json  # noqa: PLC0415

        request = self._request
        if self.operation == "GetItem":
            item = json.loads(response).get("Item")
            full = _stored(request["TableName"], request["Key"]) if item else None
            self._read(request["TableName"], [full], request.get("ConsistentRead", False))
        elif self.operation == "BatchGetItem":
            for table, asked in request.get("RequestItems", {}).items():
                items = [_stored(table, key) for key in asked.get("Keys", [])]
                for item in items:
                    self._read(table, [item], asked.get("ConsistentRead", False))
        elif self.operation == "TransactGetItems":
            for entry in request.get("TransactItems", []):
                get = entry["Get"]
                self._read(get["TableName"], [_stored(get["TableName"], get["Key"])], True, 2)
        else:
            unprojected = {
                k: v
                for k, v in request.items()
                if k not in ("ProjectionExpression", "Select", "AttributesToGet")
            }
            try:
                items = again(unprojected).get("Items", [])
            except Exception:  # noqa: BLE001 - counted from what it answered instead
                items = json.loads(response).get("Items", [])
            self._read(request["TableName"], items, request.get("ConsistentRead", False))

    def _read(self, table: str, items: list[Any], consistent: bool, factor: int = 1) -> None:
        total = sum(size_of(item) for item in items)
        units = max(1, math.ceil(total / READ_UNIT_BYTES)) * factor
        self._add(self.read_units, table, units if consistent else units / 2)

    def _add(self, counter: dict[str, float], table: str, units: float) -> None:
        key = f"{table}:{self.operation}"
        counter[key] = counter.get(key, 0) + units

    def add_to(self, log: Any) -> None:
        for key, units in self.write_units.items():
            log.write_units[key] += units
        for key, units in self.read_units.items():
            log.read_units[key] += units
        for table, size in self.written:
            log.item_bytes[table] += size
            log.items[table] += 1
