"""The web console in headless Chromium against one `callqueue up` (slow to start: one per
module): a file planned, started and followed to its outcomes; a job paused and resumed; an
opt-out list imported and exported; mistakes answered in words. Every page is checked at phone
width for sideways scrolling, and the browser's console must stay free of errors.

CONSOLE_SCREENSHOTS=docs/console writes each page's screenshots there (docs/console.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.browser import (
    FROM,
    REPO,
    SETTLE_SECONDS,
    by_id,
    callqueue_up,
    chromium,
    look,
    plan_file,
    start,
    wait_state,
    wait_text,
    write_rows,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture(scope="module")
def console() -> Iterator[str]:
    with callqueue_up("--cps", "5", "--window", "1") as url:
        yield url


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def shots() -> Path | None:
    wanted = os.environ.get("CONSOLE_SCREENSHOTS")
    if not wanted:
        return None
    path = REPO / wanted
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def module_driver(downloads: Path) -> Iterator[Any]:
    driver = chromium(downloads)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def allowed_errors() -> set[int]:
    """HTTP statuses a test provokes on purpose (the browser logs each as an error)."""
    return set()


@pytest.fixture
def driver(module_driver: Any, console: str, allowed_errors: set[int]) -> Iterator[Any]:
    """The browser on the console with a key given; afterwards its console has no error but
    the HTTP statuses the test expects."""
    module_driver.get(console + "#/new")
    if module_driver.find_element("id", "page-key").is_displayed():
        # Locally any key passes: only API Gateway checks keys.
        by_id(module_driver, "api-key").send_keys("local-key")
        module_driver.find_element("css selector", "#key-form button").click()
    by_id(module_driver, "page-new")
    module_driver.get_log("browser")
    yield module_driver
    errors = [e for e in module_driver.get_log("browser") if e["level"] == "SEVERE"]
    unexpected = [e for e in errors if not any(f" {s} " in e["message"] for s in allowed_errors)]
    assert not unexpected, unexpected


def test_console_plans_starts_and_follows_a_file_to_its_outcomes(
    driver: Any, tmp_path: Path, downloads: Path, shots: Path | None
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    # +15005550001 is a number Twilio refuses (21211, in the emulator as at Twilio).
    numbers = ["+14155550100", "not a number", "+14155550101", "+15005550001"]
    rows = write_rows(tmp_path / "greetings.csv", numbers, ["Ann", "Bob", "Zoë", "Cy"])

    planned = plan_file(driver, rows, "Hello {{name}}")

    assert "Rows\n4" in planned and "Valid\n3" in planned and "Rejected\n1" in planned
    assert "Body: Hello Ann" in planned and "Body: Hello Zoë" in planned
    assert "UCS-2" in planned  # Zoë's message needs Unicode
    assert "Estimated cost" in planned and "Last row due after" in planned
    assert "not a valid phone number" in planned
    look(driver, "new-job", shots)

    job_id = start(driver)
    wait_state(driver, ("completed",))
    counts = by_id(driver, "job-counts").text
    assert "Sent 2" in counts and "Failed 1" in counts and "Rejected (not sent) 1" in counts
    assert by_id(driver, "job-progress-text").text.startswith("4 of 4 rows")
    chart = by_id(driver, "job-chart").get_attribute("aria-label")
    assert "job target of" in chart and "account limit of" in chart
    assert "account limit" in by_id(driver, "job-chart").text
    errors = wait_text(driver, "job-errors", "21211")
    assert "invalid 'To' number" in errors
    by_id(driver, "download-outcomes_csv").click()
    saved = downloads / f"{job_id}-outcomes.csv"
    WebDriverWait(driver, 15).until(lambda _: saved.is_file() and saved.stat().st_size > 0)
    outcomes = saved.read_text(encoding="utf-8").splitlines()
    assert outcomes[0].startswith("row,to,api,outcome,error_code")
    assert sum(",sent," in line for line in outcomes) == 2
    assert sum(",failed,21211," in line for line in outcomes) == 1
    look(driver, "job", shots)

    by_id(driver, "job-retry").click()
    wait_text(driver, "alert", "A new job sends the 1 failed row(s) again.")
    assert "-retry-" in wait_text(driver, "job-id", "-retry-")
    wait_state(driver, ("completed",))

    driver.get(driver.current_url.split("#")[0] + "#/jobs")
    listed = wait_text(driver, "jobs-table", "greetings.csv")
    assert "completed" in listed and "3 of 3" in listed  # its 3 valid rows released
    assert "Sent 2 · Failed 1 · Other 1" in listed  # the first job; its retry sent 1, failed 1
    look(driver, "jobs", shots)


def test_console_plans_a_file_over_5_mb_from_its_first_rows_then_starts_it(
    driver: Any, tmp_path: Path
) -> None:
    # Two rows to send, then rejects padded past the 5 MB a plan's request may hold.
    numbers = ["+14155550102", "+14155550103"] + ["not a number"] * 42_000
    rows = write_rows(tmp_path / "large.csv", numbers, ["x" * 130] * len(numbers))
    assert rows.stat().st_size > 5 * 1024 * 1024

    driver.get(driver.current_url.split("#")[0] + "#/new")
    by_id(driver, "file").send_keys(str(rows))
    by_id(driver, "body-template").send_keys("Hello")
    by_id(driver, "check").click()
    note = wait_text(driver, "plan-sampled", "rows of about", seconds=90)

    assert re.fullmatch(r"Plan of the first [\d,]+ rows of about [\d,]+: .*", note)
    assert "Body: Hello" in by_id(driver, "plan-body").text
    start(driver)
    wait_state(driver, ("completed",))
    assert "Sent 2" in by_id(driver, "job-counts").text


def test_console_sends_the_preview_to_my_number_as_a_test(driver: Any, tmp_path: Path) -> None:
    numbers = [f"+1415557{i:04d}" for i in range(5)]
    rows = write_rows(tmp_path / "trial run.csv", numbers, [f"p{i}" for i in range(5)])
    plan_file(driver, rows, "Test for {{name}}")

    by_id(driver, "test-to").send_keys("12345")
    by_id(driver, "test-send").submit()
    wait_text(driver, "alert", "Give your number in international form")
    by_id(driver, "test-to").clear()
    by_id(driver, "test-to").send_keys("+1 415 555 0199")
    by_id(driver, "test-send").submit()

    wait_text(driver, "alert", "A test job sends 3 row(s) to +14155550199.")
    assert "test-trial-run" in wait_text(driver, "job-title", "test-")
    wait_state(driver, ("completed",))
    assert "Sent 3" in by_id(driver, "job-counts").text


def test_console_pauses_resumes_and_cancels_a_job(
    driver: Any, tmp_path: Path, allowed_errors: set[int]
) -> None:
    allowed_errors.add(409)
    numbers = [f"+1415556{i:04d}" for i in range(60)]
    rows = write_rows(tmp_path / "slow.csv", numbers, [f"n{i}" for i in range(60)])
    plan_file(driver, rows, "Reminder {{name}}", cps="1")
    start(driver)
    wait_state(driver, ("running", "released"))

    by_id(driver, "job-pause").click()
    wait_text(driver, "alert", "The job is paused.")
    wait_state(driver, ("paused",))
    by_id(driver, "job-pause").click()
    refused = wait_text(driver, "alert", "cannot pause")
    assert "already paused" in refused and "{" not in refused

    by_id(driver, "job-resume").click()
    wait_text(driver, "alert", "The job is running.")
    by_id(driver, "job-cancel").click()
    driver.switch_to.alert.accept()
    wait_text(driver, "alert", "The job is cancelled.")
    wait_state(driver, ("cancelled",))


def test_console_imports_searches_and_exports_opt_outs(
    driver: Any, tmp_path: Path, downloads: Path, shots: Path | None, allowed_errors: set[int]
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    allowed_errors.add(400)
    driver.get(driver.current_url.split("#")[0] + "#/optouts")
    good = tmp_path / "stop.csv"
    good.write_text("number,reason\n+14155550177,asked by phone\n+14155550178,complaint\n")
    by_id(driver, "optout-file").send_keys(str(good))
    by_id(driver, "optout-import").submit()
    wait_text(driver, "alert", "2 number(s) read, 2 newly opted out")
    wait_text(driver, "optout-table", "+14155550178")

    bad = tmp_path / "bad.csv"
    bad.write_text("number\n+14155550179\nnot a phone\n")
    by_id(driver, "optout-file").send_keys(str(bad))
    by_id(driver, "optout-import").submit()
    refused = wait_text(driver, "alert", "nothing imported")
    assert "line 3" in refused
    assert "+14155550179" not in by_id(driver, "optout-table").text

    by_id(driver, "optout-search").send_keys("complaint")
    assert "1 of" in wait_text(driver, "optout-count", "match")
    table = by_id(driver, "optout-table").text
    assert "+14155550178" in table and "+14155550177" not in table
    look(driver, "opt-outs", shots)

    by_id(driver, "optout-export").click()
    saved = downloads / "opt-outs.csv"
    WebDriverWait(driver, 15).until(lambda _: saved.is_file() and saved.stat().st_size > 0)
    exported = saved.read_text(encoding="utf-8")
    assert "+14155550177" in exported and "+14155550178" in exported


def test_console_refuses_a_file_of_the_wrong_kind(driver: Any, tmp_path: Path) -> None:
    wrong = tmp_path / "numbers.xlsx"
    wrong.write_bytes(b"PK\x03\x04")
    driver.get(driver.current_url.split("#")[0] + "#/new")

    by_id(driver, "file").send_keys(str(wrong))

    said = wait_text(driver, "alert", "numbers.xlsx")
    assert "choose a .csv, .json, .jsonl or .ndjson file" in said
    by_id(driver, "check").click()
    wait_text(driver, "alert", "Choose a file first.")


def test_console_asks_for_the_key_once_per_tab(driver: Any, shots: Path | None) -> None:
    driver.refresh()
    assert by_id(driver, "page-new").is_displayed()  # the key is kept in the tab

    by_id(driver, "forget-key").click()

    assert by_id(driver, "api-key").is_displayed()
    assert driver.execute_script("return sessionStorage.length") == 0
    look(driver, "sign-in", shots)


# API Gateway's answer to a key of none of the stage's usage plans (tests/gateway.py), given by
# the page's fetch in place of the API: `callqueue up` checks no key.
REFUSE_KEYS = """
const real = window.fetch;
window.fetch = (url, init) => String(url).includes("/jobs")
  ? Promise.resolve(new Response('{"message": "Forbidden"}',
      {status: 403, headers: {"Content-Type": "application/json"}}))
  : real(url, init);
"""


def test_console_sends_a_refused_key_back_to_the_key_form(hooked: Any) -> None:
    driver = hooked
    driver.execute_script(REFUSE_KEYS)

    driver.execute_script("location.hash = '#/jobs'")

    said = wait_text(driver, "alert", "The API key was refused")
    assert "Forbidden" not in said
    assert by_id(driver, "api-key").is_displayed()
    assert driver.execute_script("return sessionStorage.length") == 0


def test_console_shows_delivery_and_retries_the_undelivered(driver: Any, tmp_path: Path) -> None:
    # The emulator reports a message to +15005550080 failed (30008) after it was sent.
    rows = write_rows(tmp_path / "receipts.csv", ["+14155550102", "+15005550080"], ["Di", "Ed"])
    plan_file(driver, rows, "Hi {{name}}")
    start(driver)
    wait_state(driver, ("completed",))

    delivery = wait_text(driver, "job-delivery", "No final status yet 0", SETTLE_SECONDS)
    assert "Messages: Delivered to the handset 1" in delivery
    assert "Messages: Could not be sent by Twilio 1" in delivery
    assert "30008 (unknown error): 1" in by_id(driver, "job-delivery-note").text
    assert not driver.find_element("id", "job-retry").is_displayed()  # both rows were sent
    by_id(driver, "job-retry-undelivered").click()
    wait_text(driver, "alert", "A new job sends the 1 undelivered row(s) again.")
    assert "-retry-" in wait_text(driver, "job-id", "-retry-")
    wait_state(driver, ("completed",))


# The page's clock, a minute on: how the test reaches the Job page's give-up without waiting.
A_MINUTE_ON = "const real = Date.now; Date.now = () => real() + 61000;"


def test_console_gives_up_on_a_job_that_never_appears(
    driver: Any, allowed_errors: set[int]
) -> None:
    allowed_errors.add(404)
    driver.execute_script("location.hash = '#/job/no-such-job'")
    by_id(driver, "job-waiting")

    driver.execute_script(A_MINUTE_ON)

    said = wait_text(driver, "alert", "No job no-such-job appeared within a minute")
    assert "check the job id" in said
    assert not driver.find_element("id", "job-waiting").is_displayed()


# Each GET /jobs/{id} held until the test lets it go (window.held, oldest first), and counted
# once the page's api() has answered it: the poll that asked has rendered or stopped by the time
# the test sees the count (the rest of its step runs in the same task).
HOLD_JOB_READS = """
window.held = []; window.answered = 0; window.realFetch = window.fetch;
const isRead = (url, init) =>
  /\\/jobs\\/[^/?]+$/.test(String(url)) && (!init || init.method === "GET");
window.fetch = (url, init) => isRead(url, init)
  ? new Promise((go) => window.held.push(() => go(window.realFetch(url, init))))
  : window.realFetch(url, init);
const realApi = api;
window.api = (method, path, ...rest) => realApi(method, path, ...rest).finally(() => {
  if (isRead(path, { method })) window.answered += 1;
});
"""
RELEASE_OLDEST = "window.held.shift()()"


@pytest.fixture
def hooked(driver: Any) -> Iterator[Any]:
    """The browser for a test that replaces the page's functions: reloaded afterwards, so the
    next test gets the page's own."""
    yield driver
    driver.refresh()


def test_console_keeps_one_poll_of_a_job_after_a_steer(hooked: Any, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = hooked

    def until(script: str) -> None:
        WebDriverWait(driver, 10).until(lambda d: d.execute_script(script), script)

    numbers = [f"+1415554{i:04d}" for i in range(40)]
    rows = write_rows(tmp_path / "steady.csv", numbers, [f"s{i}" for i in range(40)])
    plan_file(driver, rows, "Note {{name}}", cps="1")
    start(driver)
    wait_state(driver, ("running", "released"))
    driver.execute_script(HOLD_JOB_READS)
    until("return window.held.length === 1")
    # A steer while the poll's read is in flight: the steer polls anew, the older poll must stop.
    by_id(driver, "job-pause").click()
    wait_text(driver, "alert", "The job is paused.")
    until("return window.held.length === 2")
    samples = driver.execute_script("return state.samples.length")

    driver.execute_script(RELEASE_OLDEST)
    until("return window.answered === 1")
    assert driver.execute_script("return state.samples.length") == samples  # stopped, unshown
    driver.execute_script(RELEASE_OLDEST)
    until("return window.answered === 2")
    assert driver.execute_script("return state.samples.length") == samples + 1
    until("return window.held.length === 1")  # the steer's poll goes on

    driver.execute_script(
        "window.fetch = window.realFetch; window.held.splice(0).forEach((g) => g())"
    )
    by_id(driver, "job-cancel").click()
    driver.switch_to.alert.accept()
    wait_state(driver, ("cancelled",))


# Counts the polls the page schedules (a timeout of POLL_MS).
COUNT_POLLS = """
window.polls = 0;
const realSetTimeout = window.setTimeout;
window.setTimeout = (f, ms, ...rest) => {
  if (ms === POLL_MS) window.polls += 1;
  return realSetTimeout(f, ms, ...rest);
};
"""


def test_console_stops_polling_a_job_when_its_page_is_left(
    hooked: Any, allowed_errors: set[int]
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = hooked

    allowed_errors.add(404)
    driver.execute_script(HOLD_JOB_READS + COUNT_POLLS)
    driver.execute_script("location.hash = '#/job/no-such-job'")
    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return window.held.length") == 1)

    driver.execute_script("location.hash = '#/optouts'")
    by_id(driver, "page-optouts")
    driver.execute_script("window.polls = 0;" + RELEASE_OLDEST)

    WebDriverWait(driver, 10).until(lambda d: d.execute_script("return window.answered") == 1)
    assert driver.execute_script("return window.polls") == 0


def test_console_stages_a_file_too_large_for_the_plans_request(driver: Any, tmp_path: Path) -> None:
    large = tmp_path / "large.csv"
    large.write_text("To,From,name\n" + f"+14155550100,{FROM},{'x' * 80}\n" * 60_000)
    # Under 4.5 MB, but each quote is escaped to two bytes: over 5 MB as the request's JSON.
    quoted = tmp_path / "quoted.csv"
    escaped = '""' * 40
    quoted.write_text("To,From,name\n" + f'+14155550100,{FROM},"{escaped}"\n' * 35_000)
    assert large.stat().st_size > 4.5 * 2**20 > quoted.stat().st_size

    for file in (large, quoted):
        driver.get(driver.current_url.split("#")[0] + "#/new")
        by_id(driver, "file").send_keys(str(file))
        by_id(driver, "check").click()

        # Staged and planned by its key, never refused for its size (a 413 would say so).
        note = wait_text(driver, "plan-sampled", "rows of about", seconds=90)
        assert note.startswith("Plan of the first")
