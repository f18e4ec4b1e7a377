"""The status page in a real browser: headless Chromium (Debian's) loads ``/status`` from a gateway
process in front of the ModelServer stand-in, with a deployment split between half_plus_two's
version 1 and its ``canary`` label (version 2).

The test sees the deployment, its arms and the backend in the DOM, sends predicts through real
HTTP, and waits (polling the DOM) until the page's own refresh shows exactly the requests each arm
answered, with the page never reloaded: a marker set on ``window`` survives. It then reaches the
pause button from the keyboard alone and saves a screenshot under the test's tmp dir.
"""

from __future__ import annotations

from pathlib import Path

import requests
from browser import chromium_fixture, wait_until  # noqa: F401  (the fixture ``chromium``)
from gateway_process import GatewayProcess
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from devserver.testing import DevServer

from .test_standin_split import PREDICT_BODY, VERSION_OF_ANSWER, split_deployment

DEPLOYMENT = "hp2-split"
ARMS = {1: "v1", 2: "label:canary"}  # the version that answers -> the arm that sent it there
USERS = 24
MAX_TABS = 20


def config(address: str) -> dict[str, object]:
    return {
        "backends": {
            "default": {"targets": [address], "health_check": {"interval_seconds": 1.0, "timeout_seconds": 1.0}}
        },
        "deployments": {DEPLOYMENT: split_deployment((1.0, 1.0), sticky_header="X-User-ID")},
    }


def cell(driver: WebDriver, table: str, key: str, field: str) -> str:
    """The text of one live cell, "" while its row is not there."""
    found = driver.find_elements(By.CSS_SELECTOR, f'#{table} tr[data-key="{key}"] [data-field="{field}"]')
    return found[0].text if found else ""


def send_traffic(url: str) -> dict[str, int]:
    """One predict per user through the split; how many each arm answered (by the value computed)."""
    answered = dict.fromkeys(ARMS.values(), 0)
    with requests.Session() as session:
        for user in range(USERS):
            reply = session.post(
                f"{url}/model-serving/{DEPLOYMENT}:predict",
                json=PREDICT_BODY,
                headers={"X-User-ID": f"user-{user}"},
                timeout=30,
            )
            assert reply.status_code == 200, reply.text
            answered[ARMS[VERSION_OF_ANSWER[reply.json()["predictions"][0]]]] += 1
    return answered


def tab_to(driver: WebDriver, element_id: str) -> list[str]:
    """Press Tab (on a page nothing was clicked on yet: from its top) until ``element_id`` has the
    focus; what was focused on the way."""
    seen: list[str] = []
    for _ in range(MAX_TABS):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        focused: WebElement = driver.switch_to.active_element
        seen.append(focused.get_attribute("id") or focused.get_attribute("outerHTML")[:80])
        if focused.get_attribute("id") == element_id:
            return seen
    raise AssertionError(f"Tab never reached #{element_id}; focus went through {seen}")


async def test_status_page_in_chromium_updates_in_place(
    standin: DevServer,
    chromium: WebDriver,
    tmp_path: Path,
) -> None:
    async with GatewayProcess(config(standin.address), workdir=tmp_path) as gw:
        driver = chromium
        driver.get(f"{gw.url}/status")
        assert driver.title == "Status · tfserving-gateway"

        # What the server rendered: the deployment, its arms and the backend.
        assert cell(driver, "deployments", DEPLOYMENT, "model") == "half_plus_two"
        assert cell(driver, "deployments", DEPLOYMENT, "sticky_header") == "X-User-ID"
        for arm in ARMS.values():
            assert cell(driver, "traffic", f"{DEPLOYMENT}/{arm}", "requests_total") == "0"
        assert cell(driver, "backends", "default", "name") == "default"

        # The page's script is running: the pause button shows, and the probe's verdict arrives live.
        driver.execute_script("window.statusMarker = 'not reloaded'")
        wait_until(driver, lambda d: d.find_element(By.ID, "pause").is_displayed(), "the pause button")
        wait_until(driver, lambda d: d.find_element(By.ID, "refresh-state").text == "Live, every 3 s", "a refresh")
        # status.js rewrites a cell only when its own format differs: after a refresh, these are its
        # texts, and they must be exactly what status_html wrote (the two formatters agree).
        arms = cell(driver, "deployments", DEPLOYMENT, "split")
        assert arms == "v1: 50.0 % (weight 1), label:canary: 50.0 % (weight 1)", arms
        assert cell(driver, "deployments", DEPLOYMENT, "pin") == "\u2013"
        wait_until(driver, lambda d: cell(d, "backends", "default", "up") == "up", "the backend to show as up")
        wait_until(driver, lambda d: cell(d, "models", "default/half_plus_two/2", "state") == "AVAILABLE", "versions")
        assert cell(driver, "models", "default/half_plus_two/1", "state") == "AVAILABLE"

        answered = send_traffic(gw.url)
        assert all(answered.values()), f"both arms must get traffic: {answered}"
        for arm, count in answered.items():
            key = f"{DEPLOYMENT}/{arm}"
            wait_until(driver, lambda d, k=key, n=count: cell(d, "traffic", k, "requests_total") == str(n), key)
            assert cell(driver, "traffic", key, "requests_per_second").endswith("/s")
            assert cell(driver, "traffic", key, "p50_seconds").endswith(" ms")
            assert cell(driver, "traffic", key, "errors_per_second") == "0.00/s"
            errors = driver.find_element(By.CSS_SELECTOR, f'#traffic tr[data-key="{key}"] [data-field="error_ratio"]')
            assert errors.get_attribute("data-alarm") == "false"
        summary = driver.find_element(By.CSS_SELECTOR, '[data-summary="requests_per_second"]').text
        assert summary.endswith("/s"), summary
        assert driver.execute_script("return window.statusMarker") == "not reloaded"

        # Keyboard only: the skip link comes first, the pause button is reachable and works.
        seen = tab_to(driver, "skip")
        assert seen == ["skip"], seen
        skip = driver.switch_to.active_element
        assert driver.execute_script("return arguments[0].getBoundingClientRect().top", skip) >= 0, "shown on focus"
        assert tab_to(driver, "pause") == ["pause"], "the pause button is the next stop"
        pause = driver.switch_to.active_element
        assert driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle", pause) == "solid"
        pause.send_keys(Keys.ENTER)
        assert pause.get_attribute("aria-pressed") == "true"
        assert pause.text == "Resume updates"
        assert driver.find_element(By.ID, "refresh-state").text == "Paused"
        pause.send_keys(Keys.SPACE)
        assert pause.get_attribute("aria-pressed") == "false"
        wait_until(driver, lambda d: d.find_element(By.ID, "refresh-state").text == "Live, every 3 s", "a refresh")

        driver.execute_script("document.activeElement.blur()")  # no focus ring in the picture
        shot = tmp_path / "status.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert driver.execute_script("return window.statusMarker") == "not reloaded"
