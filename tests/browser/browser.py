"""Helpers of the browser tests: `callqueue up` as a process, and headless Chromium (Debian's
chromium and chromium-driver, through selenium) with its downloads and console log; and the steps
the console tests share (plan a file, start it, wait for a text or a job state).

Without Chromium, its driver or selenium the tests skip, saying what is missing, except under
CI=true, where they fail: .ci/run installs Chromium and the driver."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 180.0
DESKTOP = (1280, 900)
PHONE = (375, 740)
FROM = "+15005550006"
# Waits on the real browser and stack: a job of a few rows settles in seconds.
SETTLE_SECONDS = 120


def missing(what: str) -> None:
    """Skip, or under CI fail: the browser tests must run there."""
    reason = f"the browser tests need {what} (apt-get install chromium chromium-driver; selenium)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def callqueue_up(*args: str) -> Iterator[str]:
    """`callqueue up` from this checkout, in a session of its own; yields the URL of its
    `Console:` line and stops every process of it (SIGTERM to its group) afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "callqueue.cli", "up", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        for line in process.stdout:
            if line.startswith("Console: "):
                yield line.removeprefix("Console: ").split()[0]
                return
            assert time.monotonic() < deadline, "`callqueue up` printed no Console: line in time"
        raise AssertionError(f"`callqueue up` ended ({process.wait()}) without a Console: line")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def chromium(downloads: Path) -> Any:
    """Headless Chromium at desktop size, downloading into `downloads`, its console logged."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium")
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing("chromium and chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


def overflow(driver: Any) -> int:
    """How many pixels the page is wider than the window (0: no sideways scrolling)."""
    return int(
        driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


def look(driver: Any, name: str, shots: Path | None) -> None:
    """At desktop and phone width: the page does not scroll sideways; with `shots`, a
    screenshot of the whole page at each width (NAME-desktop.png, NAME-phone.png)."""
    for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.set_window_size(width, height)
        assert driver.execute_script("return window.innerWidth") == width
        assert overflow(driver) <= 0, f"{name} scrolls sideways at {width} px"
        if shots is not None:
            tall = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, min(max(height, int(tall) + 120), 4000))
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(str(shots / f"{name}-{label}.png"))
    driver.set_window_size(*DESKTOP)


# -- the console's pages -----------------------------------------------------------------


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
