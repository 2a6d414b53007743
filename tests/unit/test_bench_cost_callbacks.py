"""bench/cost.py prices status callbacks by the path they took: a REST API request each through
API Gateway, only the callback function's invocations through its function URL."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from callqueue.local.cost_log import API_LOG
from tests.bench_modules import load_bench_module


@pytest.fixture(scope="module")
def cost() -> ModuleType:
    return load_bench_module("cost")


def test_the_rest_api_s_answers_are_counted_from_chalice_local_s_log(
    cost: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / API_LOG).write_text(
        "Serving on http://127.0.0.1:8000\n"
        '127.0.0.1 - - [07/Dec/2026 01:30:00] "POST /twilio/status?job=j&row=1 HTTP/1.1" 204 -\n'
        '127.0.0.1 - - [07/Dec/2026 01:30:00] "POST /twilio/status?job=j&row=1 HTTP/1.1" 403 -\n'
        '127.0.0.1 - - [07/Dec/2026 01:30:01] "GET /jobs/j HTTP/1.1" 200 -\n'
        "Traceback (most recent call last): a line of no request\n"
    )

    assert cost.api_requests(tmp_path) == Counter({"status callbacks": 2, "other routes": 1})
    assert cost.api_requests(tmp_path / "none") == Counter()


def test_rest_callbacks_cost_api_gateway_s_price_and_function_url_ones_only_lambda_s(
    cost: ModuleType, tmp_path: Path
) -> None:
    functions = {"status_callback_url": {"invocations": 300_000.0, "gb_seconds": 3750.0}}
    counts: dict[str, Counter[str]] = {k: Counter() for k in ("write_units", "read_units")}
    counts |= {"chunks": Counter(), "requests": Counter()}

    lines = cost.priced(counts, functions, Counter({"status callbacks": 300_000}))

    by_what = {line["what"]: line["cost"] for line in lines}
    assert by_what["REST API requests: status callbacks"] == pytest.approx(1.05)
    assert by_what["status_callback_url invocations"] == pytest.approx(0.06)
    assert cost.PRICES["apigateway_rest_request"] == 3.50 / 1e6
