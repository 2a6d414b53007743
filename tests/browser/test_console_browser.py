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

from tests.browser.browser import REPO, callqueue_up, chromium, look

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

FROM = "+15005550006"
# Waits on the real browser and stack: a job of a few rows settles in seconds.
SETTLE_SECONDS = 120


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


def by_id(driver: Any, name: str) -> Any:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 10).until(ec.visibility_of_element_located(("id", name)))


def wait_text(driver: Any, name: str, text: str, seconds: float = 15) -> str:
    """The element's text once it holds `text`."""
    from selenium.webdriver.support.ui import WebDriverWait

    def holds(d: Any) -> str | bool:
        found = d.find_elements("id", name)
        shown = found[0].text if found and found[0].is_displayed() else ""
        return shown if text in shown else False

    return str(WebDriverWait(driver, seconds).until(holds, f"#{name} never showed {text!r}"))


def wait_state(driver: Any, states: tuple[str, ...]) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    def reached(d: Any) -> str | bool:
        found = d.find_elements("id", "job-state")
        shown = found[0].text if found and found[0].is_displayed() else ""
        return shown if shown in states else False

    return str(WebDriverWait(driver, SETTLE_SECONDS).until(reached, f"never {states}"))


def write_rows(path: Path, numbers: list[str], names: list[str]) -> Path:
    lines = ["To,From,name"] + [f"{n},{FROM},{m}" for n, m in zip(numbers, names, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def plan_file(driver: Any, file: Path, template: str, cps: str = "") -> str:
    driver.get(driver.current_url.split("#")[0] + "#/new")
    by_id(driver, "file").send_keys(str(file))
    if cps:
        by_id(driver, "cps").send_keys(cps)
    by_id(driver, "body-template").send_keys(template)
    by_id(driver, "check").click()
    return wait_text(driver, "plan-body", "Preview")


def start(driver: Any) -> str:
    by_id(driver, "start").click()
    wait_text(driver, "job-id", "-")
    return str(by_id(driver, "job-id").text)


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


def test_console_sends_a_refused_key_back_to_the_key_form(driver: Any) -> None:
    driver.execute_script(REFUSE_KEYS)

    driver.execute_script("location.hash = '#/jobs'")

    said = wait_text(driver, "alert", "The API key was refused")
    assert "Forbidden" not in said
    assert by_id(driver, "api-key").is_displayed()
    assert driver.execute_script("return sessionStorage.length") == 0
