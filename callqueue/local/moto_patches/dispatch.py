"""Work around moto gaps in its server's handling of every request (harness only): finding the
request's backend, and the action its handler class answers."""

from __future__ import annotations

import functools
from typing import Any

import moto.core.responses
from moto.core.utils import method_names_from_class
from moto.moto_server.werkzeug_app import DomainDispatcherApplication


def speed_up_dispatch() -> None:
    """Work around a moto gap (harness only): its server finds each request's backend under one
    lock by listing moto's package directory and matching every service's URL patterns, so
    concurrent requests queue behind file-system calls. The answer depends on the host alone."""
    find = DomainDispatcherApplication.get_backend_for_host
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        if host not in found:
            found[host] = find(self, host)
        return found[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def speed_up_responses() -> None:
    """Work around a moto gap (harness only): every request lists its handler class's methods
    with inspect.getmembers to find the action; a class's methods do not change."""
    responses: Any = moto.core.responses
    responses.method_names_from_class = functools.cache(method_names_from_class)
