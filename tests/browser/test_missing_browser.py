"""Without Chromium the browser tests skip, saying what is missing, except under CI=true."""

from __future__ import annotations

import pytest

from tests.browser.browser import missing


def test_missing_browser_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)

    with pytest.raises(pytest.skip.Exception, match="chromium-driver"):
        missing("chromedriver")


def test_missing_browser_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")

    with pytest.raises(pytest.fail.Exception, match="need chromedriver"):
        missing("chromedriver")
