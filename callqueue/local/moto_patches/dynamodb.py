"""Work around moto gaps in DynamoDB (harness only): conditions parsed again wherever they are
used, update expressions parsed twice and checked clause by clause in quadratic time, and
transactions that copied every table they touched."""

from __future__ import annotations

import copy
import json
from typing import Any

from moto.dynamodb.comparisons import ConditionExpressionParser, get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
from moto.dynamodb.parsing.validators import (
    ActionCountValidator,
    OverlappingPathsValidator,
    UpdateExpressionValidator,
    UpdateHashRangeKeyValidator,
)

# Distinct (expression, names, values) parses kept; the harness uses a few dozen.
PARSED_EXPRESSIONS = 4096


def speed_up_conditions() -> None:
    """Work around a moto gap (harness only): every condition is parsed again wherever it is
    used (a transaction's item three times: validated, checked, written), and the lexer costs a
    millisecond or more a parse, most of a 100-row transaction's time. A parse depends on the
    expression and its attribute names and values alone, and its tree is only read afterwards;
    so one parse serves every request that sends the same three, and errors are not kept."""
    parse = ConditionExpressionParser.parse
    parsed: dict[str, tuple[Any, list[str], list[str]]] = {}

    def parse_once(parser: ConditionExpressionParser) -> Any:
        key = json.dumps(
            [
                parser.condition_expression,
                parser.expression_attribute_names,
                parser.expression_attribute_values,
            ],
            sort_keys=True,
            default=repr,  # binary values (bytes, sets of them) keyed by their repr
        )
        found = parsed.get(key)  # one read: another thread may clear the cache meanwhile
        if found is None:
            tree = parse(parser)
            if len(parsed) >= PARSED_EXPRESSIONS:
                parsed.clear()
            # Copies: moto adds other names (projections, keys) to the parser's lists later.
            names, values = list(parser.expr_attr_names_found), list(parser.expr_attr_values_found)
            parsed[key] = (tree, names, values)
            return tree
        tree, names, values = found
        parser.expr_attr_names_found = list(names)
        parser.expr_attr_values_found = list(values)
        return tree

    ConditionExpressionParser.parse = parse_once  # type: ignore[method-assign,assignment]


# The checks of an update expression that read only the expression, its attribute names and the
# table's key attributes (each returns the tree it is given, or raises).
_EXPRESSION_ONLY = (ActionCountValidator, OverlappingPathsValidator, UpdateHashRangeKeyValidator)


def speed_up_updates() -> None:
    """Work around a moto gap (harness only): an UpdateItem's expression is parsed twice a request
    (the response layer, then the backend), and checked by ten passes over its tree, some of
    which search the whole tree at every node: the sender's outcome write (a SET of a row's ~15
    attributes and a REMOVE of the rest) took moto ~10 ms against 0.2 ms an item of a batch put.
    AWS has no such cost a clause. A parse depends on the expression text alone and its tree is
    only read (the validator works on a deep copy), so one parse serves every request with that
    text; and the three checks that read nothing but the expression, its names and the table's
    keys are skipped where they passed before. Errors are never kept: an invalid expression is
    parsed and refused again each time."""
    make = UpdateExpressionParser.make
    parsed: dict[str, Any] = {}
    # The (tree, names, keys) that passed, each with its tree: held here, a tree's id names it
    # alone.
    passed: dict[tuple[int, str, str], Any] = {}

    def make_once(expression: str) -> Any:
        tree = parsed.get(expression)  # one read: another thread may clear the cache meanwhile
        if tree is None:
            tree = make(expression)
            if len(parsed) >= PARSED_EXPRESSIONS:
                parsed.clear()
                passed.clear()
            parsed[expression] = tree
        return tree

    init = UpdateExpressionValidator.__init__
    validate = UpdateExpressionValidator.validate

    def init_checked(validator: Any, expression: Any, **kwargs: Any) -> None:
        init(validator, expression, **kwargs)
        validator.callqueue_tree = expression
        validator.callqueue_key = (
            id(expression),
            json.dumps(kwargs.get("expression_attribute_names") or {}, sort_keys=True),
            json.dumps(sorted(kwargs["table"].table_key_attrs)),
        )
        if passed.get(validator.callqueue_key) is expression:
            validator.processors = [
                p for p in validator.processors if not isinstance(p, _EXPRESSION_ONLY)
            ]

    def validate_once(validator: Any) -> Any:
        tree = validate(validator)
        passed[validator.callqueue_key] = validator.callqueue_tree
        return tree

    UpdateExpressionParser.make = staticmethod(make_once)
    UpdateExpressionValidator.__init__ = init_checked  # type: ignore[method-assign,assignment]
    UpdateExpressionValidator.validate = validate_once  # type: ignore[method-assign,assignment]


def speed_up_transactions() -> None:
    """Work around a moto gap (harness only): TransactWriteItems deep-copies every table it
    touches before writing, to roll back on failure, so each transaction costs time in
    proportion to the tables' size (the call ledger's and results' tables grow a row a call).

    The same semantics without the copy: every condition is checked first and, if any fails,
    the transaction is cancelled with a reason per item and nothing is written; otherwise the
    writes are made, and an error while making them (a malformed update) puts back the items
    already written."""
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]


# DynamoDB's limit on the items of one transaction.
MAX_TRANSACTION_ITEMS = 100
_OPERATIONS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})
# An item's operation: its type, its request and the key of the item it writes or checks.
_Operation = tuple[str, dict[str, Any], dict[str, Any]]
# Why an item cancels a transaction: its code, message and old item; (None, None, None) if not.
_Reason = tuple[str | None, str | None, dict[str, Any] | None]


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    operations = _operations(self, transact_items)
    reasons = [_cancellation_reason(self, op, key) for _, op, key in operations]
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    _write_all_or_none(self, operations)


def _operations(backend: DynamoDBBackend, items: list[dict[str, Any]]) -> list[_Operation]:
    """The transaction's operations, validated as DynamoDB does: at most 100, one operation an
    item, each item written or checked once."""
    if len(items) > MAX_TRANSACTION_ITEMS:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    operations: list[_Operation] = []
    for item in items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in _OPERATIONS:
            raise ValueError("Unsupported transaction operation")
        table = backend.get_table(op["TableName"])
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if unique in seen:
            raise MultipleTransactionsException()
        seen.add(unique)
        operations.append((op_type, op, key))
    return operations


def _cancellation_reason(
    backend: DynamoDBBackend, op: dict[str, Any], key: dict[str, Any]
) -> _Reason:
    current = backend.get_item(op["TableName"], key)
    condition = op.get("ConditionExpression")
    if condition is None or get_filter_expression(
        condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    ).expr(current):
        return None, None, None
    old = None
    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        old = current.to_json()["Attributes"]
    failed = ConditionalCheckFailed(item=old)
    return "ConditionalCheckFailed", str(failed.message), old


def _write_all_or_none(backend: DynamoDBBackend, operations: list[_Operation]) -> None:
    """Make the writes; on an error, put back what was written before raising it."""
    before: list[tuple[str, dict[str, Any], Any]] = []
    try:
        for op_type, op, key in operations:
            name = op["TableName"]
            if op_type == "ConditionCheck":
                continue
            before.append((name, key, copy.deepcopy(backend.get_item(name, key))))
            if op_type == "Put":
                backend.put_item(name, op["Item"])
            elif op_type == "Delete":
                backend.delete_item(name, key)
            else:
                backend.update_item(
                    name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=op.get("ExpressionAttributeNames", {}),
                    expression_attribute_values=op.get("ExpressionAttributeValues", {}),
                )
    except Exception:
        for name, key, old in reversed(before):
            if old is None:
                backend.delete_item(name, key)
            else:
                backend.put_item(name, old.to_json()["Attributes"])
        raise
