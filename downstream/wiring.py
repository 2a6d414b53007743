"""The sinks' objects (archive, error router, systemic handler, reconciler), built on first use
and kept for the container's lifetime, from chalicelib.wiring's clients and settings. A reset of
chalicelib.wiring drops them too."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache

from chalicelib import wiring
from chalicelib.aws.alerts import Alerts
from chalicelib.aws.buckets import Bucket
from chalicelib.aws.event_bus import EventPublisher
from downstream.archive import ResponseArchive
from downstream.reconciler import Reconciler
from downstream.router import ErrorRouter
from downstream.systemic import SystemicErrors


@cache
def archive() -> ResponseArchive:
    return ResponseArchive(Bucket(wiring.client("s3"), wiring.settings().archive_bucket))


@cache
def router() -> ErrorRouter:
    store = wiring.jobs()
    return ErrorRouter(
        EventPublisher(wiring.client("events"), wiring.settings().error_bus),
        lambda job_id, n: store.add(job_id, "responses", n),
    )


@cache
def systemic() -> SystemicErrors:
    s = wiring.settings()
    return SystemicErrors(
        wiring.jobs(),
        Alerts(wiring.client("sns"), s.alert_topic_arn),
        threshold=s.systemic_error_threshold,
    )


@cache
def reconciler() -> Reconciler:
    return build_reconciler()


def build_reconciler(clock: Callable[[], float] = time.time) -> Reconciler:
    """The reconciler on the stage's resources, reading the time from `clock`."""
    s = wiring.settings()
    return Reconciler(
        wiring.jobs(),
        wiring.results(),
        Bucket(wiring.client("s3"), s.reports_bucket),
        EventPublisher(wiring.client("events"), s.error_bus),
        Alerts(wiring.client("sns"), s.alert_topic_arn),
        stalled_after_seconds=s.stalled_after_seconds,
        clock=clock,
        metrics=wiring.metrics(),
    )


def reset() -> None:
    for cached in (archive, router, systemic, reconciler):
        cached.cache_clear()


wiring.on_reset(reset)
