"""Headless Chromium for page tests: Debian's ``chromium`` and ``chromium-driver``, driven by selenium.

Use it from any test module with ``from browser import chromium_fixture  # noqa: F401`` and a
``chromium`` argument: a fresh browser with its own profile under the test's tmp dir, quit after
the test. The machine's network is closed, so every flag that makes Chromium call home is off.
A test skips only when ``/usr/bin/chromium`` is missing (``.ci/run`` installs it, so CI never does).

``wait_until(driver, condition, what)`` polls the page until ``condition(driver)`` is truthy and
returns its value; it fails naming ``what`` (and what the page said) when ``WAIT_SECONDS`` pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 60.0
WINDOW = (1440, 1500)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers have a small /dev/shm
)
T = TypeVar("T")


def chromium_options(profile: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    return options


@pytest.fixture(name="chromium")
def chromium_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile. A missing browser fails, never skips: ``make test``
    needs it as it needs curl and promtool, and ``.ci/run`` installs it."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        f"{CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver (.ci/run does)"
    )
    monkeypatch.setenv("SE_AVOID_STATS", "true")  # selenium-manager must not phone home either
    service = Service(executable_path=str(CHROMEDRIVER), env=dict(os.environ))
    driver = webdriver.Chrome(options=chromium_options(tmp_path / "chromium-profile"), service=service)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(driver: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    """Poll ``condition`` on the live page until it is truthy; its value."""
    try:
        result: T = WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.1).until(condition)
    except TimeoutException:
        text = driver.find_element("tag name", "body").text
        raise AssertionError(f"timed out waiting for {what}; the page shows:\n{text}") from None
    return result
