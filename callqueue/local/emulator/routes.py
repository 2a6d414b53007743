"""The routes: which operation of the account answers a method and path, which fault spec it
draws from, whether it is scoped to an account and whether test credentials may use it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

from callqueue.local.emulator.account import _Account
from callqueue.local.emulator.core import Form, _Reply


class _Faulted(StrEnum):
    """Which fault spec a route draws from."""

    NEVER = "never"
    OPERATION = "operation"
    LOOKUP = "lookup"


# An operation of the account, given the path's groups, the path and the form or query.
_Operation = Callable[[_Account, tuple[str, ...], str, Form], _Reply]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    faulted: _Faulted
    account_scoped: bool
    operation: _Operation
    test_credentials: bool = False
    """Whether Twilio's test credentials may use it (docs/iam/test-credentials)."""

    @classmethod
    def creating(
        cls, pattern: str, operation: _Operation, *, scoped: bool, test_credentials: bool = False
    ) -> _Route:
        """A POST that creates a resource: it draws from the operations' fault spec."""
        return cls(
            "POST", re.compile(pattern), _Faulted.OPERATION, scoped, operation, test_credentials
        )

    @classmethod
    def reading(cls, pattern: str, operation: _Operation, *, scoped: bool) -> _Route:
        """A GET that lists or fetches: it draws from the look-ups' fault spec."""
        return cls("GET", re.compile(pattern), _Faulted.LOOKUP, scoped, operation)


_ACCOUNT_PREFIX = r"/2010-04-01/Accounts/([^/]+)"
# A v2 resource's parent, named in its path (a Verify service, a Studio flow).
_PARENT = r"([^/]+)"


def _account_resource(
    collection: str,
    create: Callable[[_Account, Form], _Reply],
    listing: Callable[[_Account, str, Form], _Reply],
    fetch: Callable[[_Account, str, str], _Reply],
) -> tuple[_Route, ...]:
    """A 2010-04-01 collection of the account (Messages, Calls): create, which test credentials
    may; list; and fetch by SID (the path's second group, after the account's)."""
    every = _ACCOUNT_PREFIX + rf"/{collection}\.json"
    one = _ACCOUNT_PREFIX + rf"/{collection}/([^/]+)\.json"
    return (
        _Route.creating(
            every, lambda a, _args, _path, form: create(a, form), scoped=True, test_credentials=True
        ),
        _Route.reading(every, lambda a, _args, path, query: listing(a, path, query), scoped=True),
        _Route.reading(one, lambda a, args, path, _query: fetch(a, args[1], path), scoped=True),
    )


def _v2_resource(
    path: str,
    create: Callable[[_Account, str, Form], _Reply],
    fetch: Callable[[_Account, str, str, str], _Reply],
    listing: Callable[[_Account, str, str, Form], _Reply] | None = None,
) -> tuple[_Route, ...]:
    """A v2 collection under a parent (`path` names it with _PARENT): create, fetch by SID and,
    where there is one, list; each given the parent's SID first."""
    routes = [
        _Route.creating(path, lambda a, args, _path, form: create(a, args[0], form), scoped=False),
        _Route.reading(
            path + "/([^/]+)",
            lambda a, args, path, _query: fetch(a, args[0], args[1], path),
            scoped=False,
        ),
    ]
    if listing is not None:
        routes.append(
            _Route.reading(
                path, lambda a, args, path, query: listing(a, args[0], path, query), scoped=False
            )
        )
    return tuple(routes)


_ROUTES = (
    *_account_resource(
        "Messages", _Account.create_message, _Account.list_messages, _Account.fetch_message
    ),
    *_account_resource("Calls", _Account.create_call, _Account.list_calls, _Account.fetch_call),
    _Route(
        "GET",
        re.compile(r"/v2/PhoneNumbers/([^/]+)"),
        faulted=_Faulted.OPERATION,
        account_scoped=False,
        operation=lambda account, args, _path, query: account.fetch_phone_number(args[0], query),
        test_credentials=True,
    ),
    *_v2_resource(
        rf"/v2/Services/{_PARENT}/Verifications",
        _Account.create_verification,
        _Account.fetch_verification,
    ),
    *_v2_resource(
        rf"/v2/Flows/{_PARENT}/Executions",
        _Account.create_execution,
        _Account.fetch_execution,
        _Account.list_executions,
    ),
)


def _match(method: str, raw_path: str) -> tuple[_Route | None, tuple[str, ...]]:
    for route in _ROUTES:
        match = route.pattern.fullmatch(raw_path)
        if match is not None and route.method == method:
            return route, tuple(unquote(group) for group in match.groups())
    return None, ()
