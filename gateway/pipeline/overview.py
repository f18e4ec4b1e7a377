"""What the status page shows, gathered without any transport: one JSON-ready document.

``Board.document()`` returns (``/status.json`` serves it as is, ``/status`` renders it)::

    {"generated_at": "2026-11-30T00:12:34Z", "window_seconds": 60.0,
     "deployments": [{"key": "digits", "id": "digits", "model": "mnist", "backend": "default",
                      "version": null, "label": null, "pin": null, "sticky_header": "X-User-ID",
                      "split": [{"arm": "v1", "weight": 90.0, "share": 0.9}, ...],
                      "shadow": [{"arm": "v3", "percent": 100.0}]}],
     "backends": [{"key": "default", "name": "default", "up": true, "reason": ""}],
     "models": [{"key": "default/mnist/1", "backend": "default", "model": "mnist", "version": 1,
                 "state": "AVAILABLE", "error": ""}],
     "traffic": [{"key": "digits/v1", "name": "digits", "kind": "deployment", "arm": "v1",
                  "requests_total": 12.0, "requests_per_second": 0.2, "errors_per_second": 0.0,
                  "error_ratio": 0.0, "p50_seconds": 0.004, "p99_seconds": 0.0098}],
     "shadows": [{"key": "digits/v3", "deployment": "digits", "arm": "v3", "percent": 100.0,
                  "agree": 10.0, "disagree": 0.0, "error": 0.0, "dropped": 0.0,
                  "agreement": 1.0, "agreement_window": 1.0}],
     "summary": {"deployments": 1, "backends": 1, "backends_up": 1,
                 "requests_per_second": 0.2, "errors_per_second": 0.0}}

``key`` identifies a row across refreshes; ``pin`` is ``v<version>``, ``label:<label>`` or null.
Rates, error ratios and quantiles cover the last ``window_seconds`` (``gateway.ops.rates``) and
are ``null`` with nothing to compute from;
``errors`` are 5xx answers; ``requests_total`` and the shadow counts are since start. Traffic
rows exist for every configured deployment and arm and for every model label seen.

Model states come from ``GetModelStatus`` through ``pipeline.verbs.status``, one call per
(backend, model) the config serves, at most ``MODEL_CALLS`` at once, each with the backend's
health-check timeout, cached ``MODEL_TTL_SECONDS``. A document waits at most ``WAIT_SECONDS``
for them; a call still running then shows its last answer, or ``state: "PENDING"``, and fills the
cache for the next refresh. A failed call shows ``state: "UNREACHABLE"`` and the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from gateway.backend import readiness
from gateway.codec import meta as codec_meta
from gateway.config import DeploymentSettings, Settings
from gateway.errors import GatewayError
from gateway.ops import rates
from gateway.ops.metrics import SHADOW_RESULTS, served_registry
from gateway.pipeline import verbs
from gateway.pipeline.services import RequestInfo, Services, ServicesRef
from gateway.routing import split
from gateway.routing.binding import Binding

MODEL_TTL_SECONDS = 5.0
MODEL_CALLS = 8
WAIT_SECONDS = 1.0
REQUEST_ID = "status-page"

Document = dict[str, Any]
Row = dict[str, Any]
Servable = tuple[str, str]  # (backend, model)


def _key(*parts: object) -> str:
    return "/".join(str(part) for part in parts)


# --------------------------------------------------------------------------- config


def deployments(settings: Settings) -> list[Row]:
    return [_deployment(name, deployment) for name, deployment in sorted(settings.deployments.items())]


def _deployment(name: str, deployment: DeploymentSettings) -> Row:
    arms = deployment.split or ()
    pin = (
        f"v{deployment.version}" if deployment.version is not None else deployment.label and f"label:{deployment.label}"
    )
    return {
        "key": name,
        "id": name,
        "model": deployment.model,
        "backend": deployment.backend,
        "version": deployment.version,
        "label": deployment.label,
        "pin": pin or None,
        "sticky_header": deployment.sticky_header,
        "split": [
            {"arm": arm.name, "weight": arm.weight, "share": share}
            for arm, share in zip(arms, split.shares(arms), strict=True)
        ],
        "shadow": [{"arm": arm, "percent": percent} for arm, percent in shadows(deployment)],
    }


def shadows(deployment: DeploymentSettings) -> list[tuple[str, float | None]]:
    """(arm name, percent copied) of each shadow arm; the name is the metric's ``arm`` label."""
    return [(arm.name, arm.percent) for arm in deployment.shadow or ()]


def served(settings: Settings) -> list[Servable]:
    """Every (backend, model) the config sends requests to or probes, sorted."""
    found = {
        (backend, check.name) for backend in settings.backends for check in readiness.models_to_check(settings, backend)
    }
    found |= {(override.backend, name) for name, override in settings.models.overrides.items()}
    return sorted(found)


# --------------------------------------------------------------------------- backends


def backends(settings: Settings, health: readiness.Health) -> list[Row]:
    checks = health.checks()
    fallback = checks.get("backends", readiness.NOT_PROBED)  # present when probes do not run
    rows = []
    for name in sorted(settings.backends):
        check = checks.get(f"backend:{name}", fallback)
        rows.append({"key": name, "name": name, "up": check.ok, "reason": check.reason})
    return rows


# --------------------------------------------------------------------------- model states


@dataclass(frozen=True, slots=True)
class _Answer:
    rows: tuple[Row, ...]
    at: float


class ModelStates:
    """``GetModelStatus`` answers per (backend, model): cached briefly, fetched concurrently with a
    bound, never waited for longer than the caller says."""

    def __init__(self, ref: ServicesRef, ttl_seconds: float = MODEL_TTL_SECONDS, calls: int = MODEL_CALLS) -> None:
        self._ref = ref
        self._ttl = ttl_seconds
        self._gate = asyncio.Semaphore(calls)
        self._answers: dict[Servable, _Answer] = {}
        self._running: dict[Servable, asyncio.Task[_Answer]] = {}

    async def rows(self, wanted: Iterable[Servable], wait_seconds: float) -> list[Row]:
        """Every wanted servable's version rows: fresh, or the last answer, or PENDING after the wait."""
        wanted = list(wanted)
        now = time.monotonic()
        stale = [servable for servable in wanted if not self._fresh(servable, now)]
        tasks = [self._start(servable) for servable in stale]
        if tasks:
            await asyncio.wait(tasks, timeout=wait_seconds)
        return [row for servable in wanted for row in self._known(servable)]

    def _fresh(self, servable: Servable, now: float) -> bool:
        answer = self._answers.get(servable)
        return answer is not None and now - answer.at < self._ttl

    def _start(self, servable: Servable) -> asyncio.Task[_Answer]:
        task = self._running.get(servable)
        if task is None:
            task = self._running[servable] = asyncio.create_task(self._fetch(servable))
            task.add_done_callback(lambda _: self._running.pop(servable, None))
        return task

    def _known(self, servable: Servable) -> tuple[Row, ...]:
        answer = self._answers.get(servable)
        return answer.rows if answer is not None else (_row(servable, None, "PENDING", ""),)

    async def _fetch(self, servable: Servable) -> _Answer:
        async with self._gate:
            # Not pinned: a drain must not wait for the status page, and a reload's closed channel
            # shows as one UNREACHABLE answer for at most the TTL.
            rows = await _ask(self._ref.current, servable)
        answer = self._answers[servable] = _Answer(rows, time.monotonic())
        return answer

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _ask(services: Services, servable: Servable) -> tuple[Row, ...]:
    backend, model = servable
    settings = services.settings
    if backend not in services.backends:  # gone in a reload since the page asked
        return (_row(servable, None, "UNREACHABLE", "backend not configured"),)
    timeout = settings.backend(backend).health_check.timeout_seconds
    binding = Binding(backend, model, None, None, timeout, model, settings.model_settings(model))
    try:
        reply = await verbs.status(services, binding, RequestInfo(request_id=REQUEST_ID))
    except GatewayError as exc:
        return (_row(servable, None, "UNREACHABLE", f"{exc.reason}: {exc}"),)
    document = orjson.loads(codec_meta.encode_status(reply))
    return tuple(_version_row(servable, entry) for entry in document.get("model_version_status", ()))


def _version_row(servable: Servable, entry: Mapping[str, Any]) -> Row:
    status = entry.get("status") or {}
    message = status.get("error_message", "") if status.get("error_code", "OK") != "OK" else ""
    return _row(servable, int(entry.get("version", 0)), str(entry.get("state", "UNKNOWN")), message)


def _row(servable: Servable, version: int | None, state: str, error: str) -> Row:
    backend, model = servable
    return {
        "key": _key(backend, model, "" if version is None else version),
        "backend": backend,
        "model": model,
        "version": version,
        "state": state,
        "error": error,
    }


# --------------------------------------------------------------------------- traffic


def traffic(settings: Settings, window: rates.Window) -> list[Row]:
    """Configured deployments' arms in config order, then every other group seen, sorted."""
    configured = [(name, arm) for name, d in sorted(settings.deployments.items()) for arm in _arm_names(d)]
    known = set(configured)
    seen = sorted(group for group in window.groups if group not in known)
    return [_traffic_row(settings, group, window.groups.get(group)) for group in configured + seen]


def _arm_names(deployment: DeploymentSettings) -> list[str]:
    return [arm.name for arm in deployment.split] if deployment.split else [""]


def _traffic_row(settings: Settings, group: rates.Group, found: rates.GroupRates | None) -> Row:
    name, arm = group
    kind = "deployment" if name in settings.deployments else "model"
    return {
        "key": _key(name, arm),
        "name": name,
        "kind": kind,
        "arm": arm,
        "requests_total": found.requests_total if found else 0.0,
        "requests_per_second": found.requests_per_second if found else None,
        "errors_per_second": found.errors_per_second if found else None,
        "error_ratio": found.error_ratio if found else None,
        "p50_seconds": found.p50_seconds if found else None,
        "p99_seconds": found.p99_seconds if found else None,
    }


def shadow_rows(settings: Settings, window: rates.Window) -> list[Row]:
    percents = {(name, arm): percent for name, d in settings.deployments.items() for arm, percent in shadows(d)}
    pairs = set(percents) | {(deployment, arm) for deployment, arm, _ in window.shadow_totals}
    return [_shadow_row(pair, percents.get(pair), window) for pair in sorted(pairs)]


def _shadow_row(pair: tuple[str, str], percent: float | None, window: rates.Window) -> Row:
    deployment, arm = pair
    totals = {result: window.shadow_totals.get((deployment, arm, result), 0.0) for result in SHADOW_RESULTS}
    recent = {result: window.shadows.get((deployment, arm, result), 0.0) for result in SHADOW_RESULTS}
    return {
        "key": _key(deployment, arm),
        "deployment": deployment,
        "arm": arm,
        "percent": percent,
        **totals,
        "agreement": _agreement(totals),
        "agreement_window": _agreement(recent),
    }


def _agreement(counts: Mapping[str, float]) -> float | None:
    compared = counts["agree"] + counts["disagree"]
    return counts["agree"] / compared if compared else None


def summary(document: Document) -> Row:
    """The page's headline numbers: backends up, and all traffic's rates over the window."""
    traffic_rows = document["traffic"]
    return {
        "deployments": len(document["deployments"]),
        "backends": len(document["backends"]),
        "backends_up": sum(1 for row in document["backends"] if row["up"]),
        "requests_per_second": _sum(row["requests_per_second"] for row in traffic_rows),
        "errors_per_second": _sum(row["errors_per_second"] for row in traffic_rows),
    }


def _sum(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


# --------------------------------------------------------------------------- the board


class Board:
    """The status page's state for one app: the ring of metric snapshots and the model states."""

    def __init__(self, ref: ServicesRef, health: readiness.Health, ring: rates.Ring | None = None) -> None:
        self.ref = ref
        self.health = health
        self.ring = ring if ring is not None else rates.Ring()
        self.models = ModelStates(ref)

    async def sample(self) -> rates.Snapshot:
        """A snapshot, taken on a thread: collecting a registry costs about 0.1 ms per series, which
        with many deployments and arms is milliseconds the loop should spend answering."""
        return await asyncio.to_thread(rates.snapshot, served_registry(self.ref.current.metrics))

    async def sample_forever(self) -> None:
        """Add a snapshot to the ring every ``ring.sample_seconds``, from now until cancelled."""
        while True:
            self.ring.add(await self.sample())
            await asyncio.sleep(self.ring.sample_seconds)

    async def document(self, wait_seconds: float = WAIT_SECONDS) -> Document:
        settings = self.ref.current.settings
        window = self.ring.window(await self.sample())
        document: Document = {
            "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "window_seconds": round(window.seconds, 3),
            "deployments": deployments(settings),
            "backends": backends(settings, self.health),
            "models": await self.models.rows(served(settings), wait_seconds),
            "traffic": traffic(settings, window),
            "shadows": shadow_rows(settings, window),
        }
        document["summary"] = summary(document)
        return document

    async def close(self) -> None:
        await self.models.close()
