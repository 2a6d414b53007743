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


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    faulted: _Faulted
    account_scoped: bool
    operation: Callable[[_Account, tuple[str, ...], str, Form], _Reply]
    test_credentials: bool = False
    """Whether Twilio's test credentials may use it (docs/iam/test-credentials)."""


_ACCOUNT_PREFIX = r"/2010-04-01/Accounts/([^/]+)"

_ROUTES = (
    _Route(
        "POST",
        re.compile(_ACCOUNT_PREFIX + r"/Messages\.json"),
        faulted=_Faulted.OPERATION,
        account_scoped=True,
        operation=lambda account, _args, _path, form: account.create_message(form),
        test_credentials=True,
    ),
    _Route(
        "GET",
        re.compile(_ACCOUNT_PREFIX + r"/Messages\.json"),
        faulted=_Faulted.LOOKUP,
        account_scoped=True,
        operation=lambda account, _args, path, query: account.list_messages(path, query),
    ),
    _Route(
        "GET",
        re.compile(_ACCOUNT_PREFIX + r"/Messages/([^/]+)\.json"),
        faulted=_Faulted.LOOKUP,
        account_scoped=True,
        operation=lambda account, args, path, _query: account.fetch_message(args[1], path),
    ),
    _Route(
        "POST",
        re.compile(_ACCOUNT_PREFIX + r"/Calls\.json"),
        faulted=_Faulted.OPERATION,
        account_scoped=True,
        operation=lambda account, _args, _path, form: account.create_call(form),
        test_credentials=True,
    ),
    _Route(
        "GET",
        re.compile(_ACCOUNT_PREFIX + r"/Calls\.json"),
        faulted=_Faulted.LOOKUP,
        account_scoped=True,
        operation=lambda account, _args, path, query: account.list_calls(path, query),
    ),
    _Route(
        "GET",
        re.compile(_ACCOUNT_PREFIX + r"/Calls/([^/]+)\.json"),
        faulted=_Faulted.LOOKUP,
        account_scoped=True,
        operation=lambda account, args, path, _query: account.fetch_call(args[1], path),
    ),
    _Route(
        "GET",
        re.compile(r"/v2/PhoneNumbers/([^/]+)"),
        faulted=_Faulted.OPERATION,
        account_scoped=False,
        operation=lambda account, args, _path, query: account.fetch_phone_number(args[0], query),
        test_credentials=True,
    ),
    _Route(
        "POST",
        re.compile(r"/v2/Services/([^/]+)/Verifications"),
        faulted=_Faulted.OPERATION,
        account_scoped=False,
        operation=lambda account, args, _path, form: account.create_verification(args[0], form),
    ),
    _Route(
        "GET",
        re.compile(r"/v2/Services/([^/]+)/Verifications/([^/]+)"),
        faulted=_Faulted.LOOKUP,
        account_scoped=False,
        operation=lambda account, args, path, _query: account.fetch_verification(
            args[0], args[1], path
        ),
    ),
    _Route(
        "POST",
        re.compile(r"/v2/Flows/([^/]+)/Executions"),
        faulted=_Faulted.OPERATION,
        account_scoped=False,
        operation=lambda account, args, _path, form: account.create_execution(args[0], form),
    ),
    _Route(
        "GET",
        re.compile(r"/v2/Flows/([^/]+)/Executions"),
        faulted=_Faulted.LOOKUP,
        account_scoped=False,
        operation=lambda account, args, path, query: account.list_executions(args[0], path, query),
    ),
    _Route(
        "GET",
        re.compile(r"/v2/Flows/([^/]+)/Executions/([^/]+)"),
        faulted=_Faulted.LOOKUP,
        account_scoped=False,
        operation=lambda account, args, path, _query: account.fetch_execution(
            args[0], args[1], path
        ),
    ),
)


def _match(method: str, raw_path: str) -> tuple[_Route | None, tuple[str, ...]]:
    for route in _ROUTES:
        match = route.pattern.fullmatch(raw_path)
        if match is not None and route.method == method:
            return route, tuple(unquote(group) for group in match.groups())
    return None, ()
