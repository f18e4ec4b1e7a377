"""``/status`` and ``/status.json`` without a browser: real HTTP into the gateway, real gRPC to the fake.

- with JavaScript off the page already shows the numbers at load time (the HTML is parsed here);
- every config-derived string is escaped (a hostile split label through the real page, and a
  hostile deployment id through the renderer, which config validation would never let through);
- ``auth.protect_metrics`` guards the page, its JSON and its assets exactly as it guards
  ``/metrics`` (on ``server.metrics_port`` too: ``tests/test_claims_process.py``);
- ``/status.json`` has the documented shape;
- a dead backend shows as down, and a backend that never answers does not hang the page;
- shadow agreement shows real copies, from ``tfs_gateway_shadow_requests_total`` and the config.

The browser test (``tests/e2e_standin/test_standin_status_page.py``) covers the live refresh.
"""

from __future__ import annotations

import asyncio
import html.parser
import re
import socket
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest
from fake_backend import HANG, FakeModelServer
from harness import MODEL, GatewayClient, MakeGatewayClient
from prometheus_client import CollectorRegistry

from gateway.config import Settings
from gateway.web import status_html
from gateway.web.app import create_app
from gateway.web.keys import SERVICES

AiohttpClient = Any
SPLIT = {"model": MODEL, "split": [{"version": 1, "weight": 3}, {"label": "canary", "weight": 1}]}
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;'
STATUS_PATHS = ("/status", "/status.json", "/status.js", "/status.css")
CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=20)


# --------------------------------------------------------------------------- reading the page


class Page(html.parser.HTMLParser):
    """The parts of the page the tests read: cells by (table, row key, field), tags, attributes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: dict[tuple[str, str, str], str] = {}
        self.cell_attrs: dict[tuple[str, str, str], dict[str, str | None]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.summary: dict[str, str] = {}
        self._table = ""
        self._key = ""
        self._in_template = False
        self._field: tuple[str, str, str] | None = None
        self._summary: str | None = None
        self._text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "table":
            self._table = attributes.get("data-source") or ""
        elif tag == "template":
            self._in_template = True
        elif tag == "tr" and not self._in_template:
            self._key = attributes.get("data-key") or ""
        elif attributes.get("data-field") and self._key and not self._in_template:
            self._field = (self._table, self._key, attributes["data-field"] or "")
            self.cell_attrs[self._field] = attributes
            self._text = []
        elif attributes.get("data-summary"):
            self._summary = attributes["data-summary"]
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "template":
            self._in_template = False
        elif tag in ("td", "th") and self._field is not None:
            self.cells[self._field] = "".join(self._text)
            self._field = None
        elif tag == "span" and self._summary is not None:
            self.summary[self._summary] = "".join(self._text)
            self._summary = None

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def rows(self, table: str) -> set[str]:
        return {key for (source, key, _) in self.cells if source == table}


async def get_page(client: GatewayClient, headers: Mapping[str, str] | None = None) -> tuple[Page, str]:
    async with client.get("/status", headers=headers) as response:
        text = await response.text()
        assert response.status == 200, text
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
        return Page(text), text


async def get_document(client: GatewayClient) -> dict[str, Any]:
    async with client.get("/status.json") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "application/json"
        document: dict[str, Any] = await response.json()
        return document


async def predict(client: GatewayClient, path: str, user: str = "") -> None:
    headers = {"X-User-ID": user} if user else {}
    async with client.post(f"{path}:predict", json={"instances": [1.0]}, headers=headers) as response:
        assert response.status == 200, await response.text()


# --------------------------------------------------------------------------- JavaScript off


async def test_the_page_shows_the_numbers_at_load_time_without_javascript(
    make_gateway_client: MakeGatewayClient,
) -> None:
    split = {**SPLIT, "sticky_header": "X-User-ID"}
    client = await make_gateway_client({"deployments": {"split-dep": split}})
    for _ in range(5):
        await predict(client, "/model-serving/my-dep")
    for user in range(8):
        await predict(client, "/model-serving/split-dep", f"user-{user}")
    page, text = await get_page(client)

    assert page.cells["traffic", "my-dep/", "requests_total"] == "5"
    assert page.cells["traffic", "my-dep/", "requests_per_second"].endswith("/s")
    assert page.cells["traffic", "my-dep/", "p50_seconds"].endswith(" ms")
    assert page.cells["traffic", "my-dep/", "errors_per_second"] == "0.00/s"
    assert page.cell_attrs["traffic", "my-dep/", "errors_per_second"]["data-alarm"] == "false"
    arms = [int(page.cells["traffic", f"split-dep/{arm}", "requests_total"]) for arm in ("v1", "label:canary")]
    assert sum(arms) == 8, arms
    assert page.cells["deployments", "split-dep", "split"] == "v1: 75.0 % (weight 3), label:canary: 25.0 % (weight 1)"
    assert page.cells["deployments", "split-dep", "sticky_header"] == "X-User-ID"
    assert page.cells["deployments", "pinned-dep", "pin"] == "v2"
    assert page.cells["deployments", "stable-dep", "pin"] == "label:stable"
    assert page.cells["models", f"default/{MODEL}/2", "state"] == "AVAILABLE"
    assert page.summary["deployments"] == "5"
    assert (page.summary["backends_up"], page.summary["backends"]) == ("0", "1")  # no probes in this app
    assert page.summary["requests_per_second"].endswith("/s")

    # Accessible and CSP-clean: a skip link first, captioned tables with header cells, no inline code.
    first_link = next(attrs for tag, attrs in page.tags if tag == "a")
    assert first_link == {"class": "skip", "id": "skip", "href": "#main"}
    assert text.count("<caption>") == len(status_html.TABLES) == text.count("<table ")
    assert ("th", {"scope": "col"}) in page.tags
    assert any(tag == "th" and attrs.get("scope") == "row" for tag, attrs in page.tags)
    assert any(attrs.get("aria-live") == "polite" for _, attrs in page.tags)
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts == [{"src": "status.js", "defer": None}]
    assert not any(tag == "style" or "style" in attrs for tag, attrs in page.tags)


async def test_the_script_and_stylesheet_are_served_from_the_gateway(gateway_client: GatewayClient) -> None:
    for path, content_type in (("/status.js", "text/javascript"), ("/status.css", "text/css")):
        async with gateway_client.get(path) as response:
            body = await response.text()
            assert response.status == 200, body
            assert response.headers["Content-Type"] == f"{content_type}; charset=utf-8"
            assert "http://" not in body and "https://" not in body and "@import" not in body, path
    async with gateway_client.get("/status.js") as response:
        script = await response.text()
    for hook in ("data-source", "data-key", "data-field", "data-format", "data-summary", "status.json", "pause"):
        assert hook in script, hook  # the markup's contract with status_html


async def test_requests_are_counted_under_their_own_routes(gateway_client: GatewayClient) -> None:
    for path in ("/status", "/status.json", "/status.js", "/status.css"):
        async with gateway_client.get(path) as response:
            assert response.status == 200, path
    async with gateway_client.get("/metrics") as response:
        text = await response.text()
    for route, count in (("status_page", 1), ("status_json", 1), ("status_asset", 2)):
        pattern = rf'tfs_gateway_http_requests_total\{{[^}}]*code="200"[^}}]*route="{route}"[^}}]*\}} {count}\.0'
        assert re.search(pattern, text), route


# --------------------------------------------------------------------------- escaping


async def test_a_hostile_label_is_escaped_everywhere(make_gateway_client: MakeGatewayClient) -> None:
    split = {"model": MODEL, "split": [{"version": 1, "weight": 1}, {"label": HOSTILE, "weight": 1}]}
    client = await make_gateway_client({"deployments": {"evil": split}})
    page, text = await get_page(client)
    assert "<script>alert" not in text and "<img" not in text
    assert page.cells["traffic", f"evil/label:{HOSTILE}", "arm"] == f"label:{HOSTILE}"
    assert f"label:{HOSTILE}: 50.0 %" in page.cells["deployments", "evil", "split"]
    assert [tag for tag, _ in page.tags].count("script") == 1


def test_a_hostile_deployment_id_renders_as_text() -> None:
    """Config validation refuses such ids today; the renderer must not depend on that."""
    row = {"key": HOSTILE, "id": HOSTILE, "model": HOSTILE, "backend": HOSTILE, "pin": HOSTILE}
    row |= {"sticky_header": HOSTILE, "split": [{"arm": HOSTILE, "weight": 1.0, "share": 1.0}], "shadow": []}
    document = {"generated_at": HOSTILE, "deployments": [row], "summary": {}}
    text = status_html.page(document, version=HOSTILE, links=[(HOSTILE, HOSTILE)])
    page = Page(text)
    assert "<script>alert" not in text and "<img" not in text
    assert page.cells["deployments", HOSTILE, "id"] == HOSTILE
    assert page.cells["deployments", HOSTILE, "split"] == f"{HOSTILE}: 100.0 % (weight 1)"
    assert ("a", {"href": HOSTILE}) in page.tags


# --------------------------------------------------------------------------- protection


@pytest.mark.parametrize("protect", [True, False])
async def test_protection_follows_protect_metrics(
    make_gateway_client: MakeGatewayClient, monkeypatch: pytest.MonkeyPatch, protect: bool
) -> None:
    monkeypatch.setenv("STATUS_TEST_KEY", "status-secret")
    auth = {"type": "api_key", "api_keys": [{"env": "STATUS_TEST_KEY"}], "protect_metrics": protect}
    client = await make_gateway_client({"auth": auth})
    for path in (*STATUS_PATHS, "/metrics"):
        async with client.get(path) as response:
            if protect:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert next(iter(await response.json())) == "error"
            else:
                assert response.status == 200, path
        async with client.get(path, headers={"X-API-Key": "status-secret"}) as response:
            assert response.status == 200, path


# --------------------------------------------------------------------------- /status.json


def _typed(row: Mapping[str, Any], types: Mapping[str, Any]) -> None:
    assert set(row) == set(types), (sorted(row), sorted(types))
    for key, kind in types.items():
        assert isinstance(row[key], kind), (key, row[key], kind)


NUMBER_OR_NULL = (float, int, type(None))
SCHEMA: dict[str, dict[str, Any]] = {
    "deployments": {
        "key": str,
        "id": str,
        "model": str,
        "backend": str,
        "version": (int, type(None)),
        "label": (str, type(None)),
        "pin": (str, type(None)),
        "sticky_header": (str, type(None)),
        "split": list,
        "shadow": list,
    },
    "backends": {"key": str, "name": str, "up": bool, "reason": str},
    "models": {"key": str, "backend": str, "model": str, "version": (int, type(None)), "state": str, "error": str},
    "traffic": {
        "key": str,
        "name": str,
        "kind": str,
        "arm": str,
        "requests_total": (float, int),
        "requests_per_second": NUMBER_OR_NULL,
        "errors_per_second": NUMBER_OR_NULL,
        "error_ratio": NUMBER_OR_NULL,
        "p50_seconds": NUMBER_OR_NULL,
        "p99_seconds": NUMBER_OR_NULL,
    },
}


async def test_status_json_has_the_documented_shape(make_gateway_client: MakeGatewayClient) -> None:
    client = await make_gateway_client({"deployments": {"split-dep": SPLIT}})
    await predict(client, "/model-serving/my-dep")
    document = await get_document(client)
    assert list(document) == [
        "generated_at",
        "window_seconds",
        "deployments",
        "backends",
        "models",
        "traffic",
        "shadows",
        "summary",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["generated_at"])
    assert isinstance(document["window_seconds"], float | int)
    for section, types in SCHEMA.items():
        assert document[section], section
        for row in document[section]:
            _typed(row, types)
    (split,) = [d for d in document["deployments"] if d["id"] == "split-dep"]
    assert split["split"] == [
        {"arm": "v1", "weight": 3.0, "share": 0.75},
        {"arm": "label:canary", "weight": 1.0, "share": 0.25},
    ]
    assert {(m["model"], m["version"], m["state"]) for m in document["models"]} >= {
        (MODEL, 1, "AVAILABLE"),
        (MODEL, 2, "AVAILABLE"),
    }
    (mine,) = [t for t in document["traffic"] if t["key"] == "my-dep/"]
    assert mine["requests_total"] == 1 and mine["kind"] == "deployment"
    assert document["summary"] == {
        "deployments": 5,
        "backends": 1,
        "backends_up": 0,  # no probes in this app
        "requests_per_second": pytest.approx(sum(t["requests_per_second"] or 0 for t in document["traffic"])),
        "errors_per_second": 0.0,
    }


# --------------------------------------------------------------------------- dead backends


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_dead_backend_shows_as_down(aiohttp_client: AiohttpClient) -> None:
    settings = Settings.from_mapping(
        {
            "backends": {
                "default": {
                    "targets": [f"127.0.0.1:{closed_port()}"],
                    "health_check": {"interval_seconds": 0.2, "timeout_seconds": 0.2},
                }
            },
            "deployments": {"dep": {"model": MODEL}},
        }
    )
    client = await aiohttp_client(create_app(settings, registry=CollectorRegistry(), probes=True))
    async with client.post("/model-serving/dep:predict", json={"instances": [1.0]}) as response:
        assert response.status == 503
    for _ in range(500):  # until the first probe answered; each round waits for a real request
        (backend,) = (await get_document(client))["backends"]
        if backend["reason"] != "not probed yet":
            break
        await asyncio.sleep(0.05)
    assert backend["up"] is False and backend["reason"].startswith(f"model {MODEL}:"), backend
    page, _ = await get_page(client)
    assert page.cells["backends", "default", "up"] == "down"
    assert page.cell_attrs["backends", "default", "up"]["data-state"] == "down"
    assert page.cells["backends", "default", "reason"] == backend["reason"]
    assert page.cells["models", f"default/{MODEL}/", "state"] == "UNREACHABLE"
    assert page.cells["traffic", "dep/", "error_ratio"] == "100.0 %"
    assert page.cell_attrs["traffic", "dep/", "error_ratio"]["data-alarm"] == "true"
    assert page.cell_attrs["traffic", "dep/", "requests_per_second"].get("data-alarm") is None
    reason = page.cells["models", f"default/{MODEL}/", "error"].split(":")[0]
    assert reason in ("backend_unavailable", "circuit_open"), reason  # the probes may have opened the breaker


async def test_a_backend_that_never_answers_does_not_hang_the_page(
    make_gateway_client: MakeGatewayClient, fake_backend: FakeModelServer
) -> None:
    """GetModelStatus hangs for the backend's whole 30 s deadline; the page answers with what it has
    (``PENDING``) well inside the client's 20 s, and the call is still one call per servable."""
    fake_backend.set_reply("GetModelStatus", HANG)
    slow = {"health_check": {"interval_seconds": 30.0, "timeout_seconds": 30.0}}
    client = await make_gateway_client({"backends": {"default": slow}})
    async with client.get("/status", timeout=CLIENT_TIMEOUT) as response:
        page = Page(await response.text())
        assert response.status == 200
    assert page.cells["models", f"default/{MODEL}/", "state"] == "PENDING"
    document = await get_document(client)  # a second look joins the call in flight
    assert {row["state"] for row in document["models"]} == {"PENDING"}
    asked = [call.request.model_spec.name for call in fake_backend.calls("GetModelStatus")]
    assert sorted(asked) == sorted({"multi", MODEL}), asked


# --------------------------------------------------------------------------- shadows


async def test_shadow_agreement_shows_live_copies_and_their_config(make_gateway_client: MakeGatewayClient) -> None:
    """Real copies: the fake's versions 1 and 2 of half_plus_two compute the same, so every copy agrees."""
    shadowed = {"model": MODEL, "version": 1, "shadow": [{"version": 2, "percent": 100}]}
    client = await make_gateway_client({"deployments": {"shadowed": shadowed}})
    for _ in range(4):
        await predict(client, "/model-serving/shadowed")
    for _ in range(500):  # copies finish after the answers: wait for the fourth, one real request a round
        (row,) = (await get_document(client))["shadows"]
        if row["agree"] == 4:
            break
        await asyncio.sleep(0.02)
    assert row == {
        "key": "shadowed/v2",
        "deployment": "shadowed",
        "arm": "v2",
        "percent": 100.0,
        "agree": 4.0,
        "disagree": 0.0,
        "error": 0.0,
        "dropped": 0.0,
        "agreement": 1.0,
        "agreement_window": 1.0,
    }
    page, _ = await get_page(client)
    assert page.cells["shadows", "shadowed/v2", "percent"] == "100 %"
    assert page.cells["shadows", "shadowed/v2", "agreement"] == "100.0 %"
    assert page.cells["deployments", "shadowed", "shadow"] == "v2: 100 %"


async def test_shadow_agreement_is_read_from_the_shadow_counter(gateway_client: GatewayClient) -> None:
    """Every result counts: agreement is agree / (agree + disagree); errors and drops stand apart."""
    shadow = gateway_client.server.app[SERVICES].current.metrics.shadow_requests
    for result, count in (("agree", 3), ("disagree", 1), ("error", 2), ("dropped", 5)):
        shadow.labels("my-dep", "v2", result).inc(count)
    (row,) = (await get_document(gateway_client))["shadows"]
    assert {key: row[key] for key in ("agree", "disagree", "error", "dropped", "agreement")} == {
        "agree": 3.0,
        "disagree": 1.0,
        "error": 2.0,
        "dropped": 5.0,
        "agreement": 0.75,
    }
    assert row["percent"] is None  # seen in the metrics, not in the config
    page, _ = await get_page(gateway_client)
    assert page.cells["shadows", "my-dep/v2", "agreement"] == "75.0 %"
    assert page.cells["shadows", "my-dep/v2", "dropped"] == "5"
    assert page.cell_attrs["shadows", "my-dep/v2", "disagree"]["data-alarm"] == "true"
