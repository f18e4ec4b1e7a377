"""/openapi.json and /docs through real sockets, in front of the scripted fake backend.

The example models behind the ModelServer stand-in, schemathesis and version changes are in
``tests/e2e_standin/test_standin_openapi.py``; this file covers the page, its assets and headers,
auth, the document's cache and what it says about the fake's model zoo.
"""

from __future__ import annotations

import asyncio
import json
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import pytest
from browser import chromium_fixture, wait_until  # noqa: F401  (the chromium fixture, by name)
from harness import MODEL, ODD_NAME, MakeGatewayClient, raw_url
from openapi_spec_validator import validate
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from gateway.web import selfdoc

KEY = "docs-key-0123"
GLOBAL_KEY_AUTH = {"type": "api_key", "api_keys": [{"env": "SELFDOC_KEY"}]}


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFDOC_KEY", KEY)


async def get(client: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    async with client.session.get(raw_url(client, path), headers=headers or {}) as response:
        return response.status, response.headers, await response.read()


async def openapi_document(client: Any) -> dict[str, Any]:
    async with client.session.get(raw_url(client, "/openapi.json")) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "application/json"
        document: dict[str, Any] = await response.json()
        return document


# --------------------------------------------------------------------------- /docs


class _Refs(HTMLParser):
    """Every URL the page would load: src and href attributes, and whether it has inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value is not None]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        self.inline_script = self.inline_script or (self._in_script and bool(data.strip()))


async def test_docs_page_loads_only_same_origin_assets_under_a_strict_csp(
    make_gateway_client: MakeGatewayClient,
) -> None:
    client = await make_gateway_client()
    status, headers, body = await get(client, "/docs")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert not re.search(r"https?:|\*|'unsafe-inline'|'unsafe-eval'", csp), csp
    refs = _Refs()
    refs.feed(body.decode())
    assert refs.urls and not refs.inline_script, "the init script must be a file, for the CSP"
    for url in refs.urls:
        if url == "data:,":  # the empty favicon: the browser then asks for no /favicon.ico
            continue
        assert url.startswith("/docs/") and url in selfdoc.ASSETS, url
        asset_status, asset_headers, asset_body = await get(client, url)
        assert asset_status == 200 and asset_body, url
        assert asset_headers["Content-Type"] == selfdoc.ASSETS[url][1], url
        assert asset_headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("/docs/swagger-ui.css", "text/css; charset=utf-8"),
        ("/docs/init.js", "text/javascript; charset=utf-8"),
        ("/docs/LICENSE", "text/plain; charset=utf-8"),
        ("/docs/NOTICE", "text/plain; charset=utf-8"),
    ],
)
async def test_assets_are_served_with_their_content_types(
    make_gateway_client: MakeGatewayClient, path: str, content_type: str
) -> None:
    status, headers, body = await get(await make_gateway_client(), path)
    assert (status, headers["Content-Type"]) == (200, content_type)
    assert len(body) > 50


async def test_init_script_reads_our_document_and_turns_the_validator_off(
    make_gateway_client: MakeGatewayClient,
) -> None:
    _, _, body = await get(await make_gateway_client(), "/docs/init.js")
    script = body.decode()
    assert re.search(r"\bvalidatorUrl:\s*null\b", script)
    assert re.search(r"\burl:\s*\"/openapi\.json\"", script)
    assert "http" not in script


async def test_other_docs_paths_are_404_with_the_envelope(make_gateway_client: MakeGatewayClient) -> None:
    status, _, body = await get(await make_gateway_client(), "/docs/index.css")
    assert status == 404 and body.startswith(b'{"error":')


# --------------------------------------------------------------------------- /openapi.json


async def test_document_describes_the_fake_zoo_and_validates(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client()
    await client.post(f"/v1/models/{MODEL}/versions/1:predict", json={"instances": [1.0]})
    odd = f"/v1/models/{quote(ODD_NAME, safe='')}/labels/my%2Flabel"
    async with client.session.post(raw_url(client, f"{odd}:predict"), json={"instances": [1.0]}) as response:
        assert response.status == 200, await response.text()
    document = await openapi_document(client)
    validate(document)
    paths = document["paths"]
    for deployment in ("my-dep", "pinned-dep", "stable-dep", "multi-dep"):
        assert f"/model-serving/{deployment}:predict" in paths, deployment
    assert f"/v1/models/{MODEL}/versions/1:predict" in paths, "seen by a predict"
    multi = paths["/model-serving/multi-dep:predict"]["post"]["requestBody"]["content"]["application/json"]
    row = multi["schema"]["oneOf"][0]["properties"]["instances"]["items"]
    assert sorted(row["properties"]) == ["alpha", "beta"]
    assert f"{odd}:predict" in paths, "a name that needs quoting, quoted as the URL grammar reads it"
    for page in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/swagger-ui-bundle.js"):
        assert page in paths, page


async def test_document_is_cached_until_signatures_change(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client()
    first = await openapi_document(client)
    assert await openapi_document(client) == first
    assert f"/v1/models/{MODEL}/labels/canary:predict" not in first["paths"]
    async with client.post(f"/v1/models/{MODEL}/labels/canary:predict", json={"instances": [1.0]}) as response:
        assert response.status == 200
    second = await openapi_document(client)
    assert f"/v1/models/{MODEL}/labels/canary:predict" in second["paths"], "a new servable seen: rebuilt at once"


async def test_a_backend_failure_leaves_the_deployment_generic(
    make_gateway_client: MakeGatewayClient,
) -> None:
    client = await make_gateway_client({"deployments": {"ghost-dep": {"model": "no_such_model"}}})
    document = await openapi_document(client)
    ghost = document["paths"]["/model-serving/ghost-dep:predict"]["post"]
    assert "unavailable" in ghost["description"]
    assert "classify" in str(document["paths"].get("/model-serving/ghost-dep:classify")), "generic: every verb"


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/docs/swagger-ui-bundle.js"])
async def test_self_description_follows_protect_metrics(make_gateway_client: MakeGatewayClient, path: str) -> None:
    open_ = await make_gateway_client({"auth": {**GLOBAL_KEY_AUTH, "protect_metrics": False}})
    assert (await get(open_, path))[0] == 200
    locked = await make_gateway_client({"auth": {**GLOBAL_KEY_AUTH, "protect_metrics": True}})
    assert (await get(locked, path))[0] == 401
    assert (await get(locked, path, {"X-API-Key": KEY}))[0] == 200


async def test_protected_routes_document_401_and_security(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client({"auth": {**GLOBAL_KEY_AUTH, "protect_metrics": True}})
    _, _, body = await get(client, "/openapi.json", {"X-API-Key": KEY})
    document = json.loads(body)
    validate(document)
    predict = document["paths"]["/model-serving/my-dep:predict"]["post"]
    assert {"401", "403"} <= set(predict["responses"]) and predict["security"]
    assert "401" in document["paths"]["/openapi.json"]["get"]["responses"]
    assert "401" not in document["paths"]["/healthz"]["get"]["responses"], "protect_health is off"


async def test_requests_are_counted_under_their_own_routes(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client()
    await get(client, "/openapi.json")
    await get(client, "/docs")
    _, _, metrics = await get(client, "/metrics")
    text = metrics.decode()
    assert re.search(r'tfs_gateway_http_requests_total\{[^}]*code="200"[^}]*route="openapi"', text)
    assert re.search(r'tfs_gateway_http_requests_total\{[^}]*code="200"[^}]*route="docs"', text)


# --------------------------------------------------------------------------- in a real browser


def _try_predict(driver: WebDriver, base: str) -> tuple[str, str, list[dict[str, Any]]]:
    """Open /docs, run "Try it out" on a deployment's predict, and return (status, body, console log)."""
    driver.get(f"{base}/docs")
    path = "/model-serving/my-dep:predict"
    summary = wait_until(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f'.opblock-summary-path[data-path="{path}"]'),
        f"the {path} operation",
    )
    summary.click()
    wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".try-out__btn"), "Try it out").click()
    editor = wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "textarea.body-param__text"), "the body")
    editor.clear()
    editor.send_keys('{"instances": [1.0, 2.0]}')
    driver.find_element(By.CSS_SELECTOR, ".execute").click()
    status = wait_until(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status").text.strip(),
        "the live response",
    )
    body = driver.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_description").text
    return status, body, driver.get_log("browser")


async def test_swagger_ui_calls_the_gateway_from_a_real_browser(
    make_gateway_client: MakeGatewayClient, chromium: WebDriver
) -> None:
    client = await make_gateway_client()
    base = f"http://127.0.0.1:{client.server.port}"
    # selenium blocks: it runs on a thread so this loop keeps serving the page it drives
    status, body, console = await asyncio.to_thread(_try_predict, chromium, base)
    assert status == "200", body
    assert json.loads(body[body.index("{") : body.rindex("}") + 1]) == {"predictions": [2.5, 3.0]}
    assert not [entry for entry in console if entry["level"] == "SEVERE"], console
