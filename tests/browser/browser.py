"""Helpers of the browser tests: `callqueue up` as a process, and headless Chromium (Debian's
chromium and chromium-driver, through selenium) with its downloads and console log.

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
