"""Every metric the gateway exports, declared once on an injected registry.

Labels stay bounded: ``route`` comes from a fixed set, ``model`` is a configured model
or deployment name or ``other``, ``version`` a number, ``label:<l>`` or ``latest`` (and
versions and labels are only kept for known models), ``code`` an HTTP status, ``arm`` the
name of a configured split arm (``v1``, ``label:canary``, ``mnist_v3@gpu``) or "".

With ``--workers N`` every worker writes its values to ``PROMETHEUS_MULTIPROC_DIR`` and the
metrics page sums them with ``MultiProcessCollector`` (process metrics are then left out:
they describe one process, and prometheus_client cannot aggregate them).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from typing import NamedTuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

import gateway

NAMESPACE = "tfs_gateway"
OTHER = "other"

# 1 ms .. 60 s: small predicts take milliseconds, image batches seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = tuple(float(4**k) for k in range(3, 15))  # 64 B .. 256 MiB
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# 1 ms .. 10 s: a healthy loop is late by well under a millisecond; a stuck one by seconds.
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

API_ROUTES = (
    tuple(
        f"{family}_{kind}"
        for family in ("v1", "deployment")
        for kind in ("status", "metadata", "predict", "classify", "regress")
    )
    + tuple(
        # The Open Inference Protocol's routes, under /v2 and /model-serving/{id}/v2.
        f"{family}_{kind}"
        for family in ("v2", "deployment_v2")
        for kind in ("live", "ready", "server_metadata", "model_ready", "model_metadata", "infer")
    )
    + tuple(
        # TF Serving's own gRPC API on server.grpc_port (gateway.grpcfront).
        f"grpc_tfs_{kind}"
        for kind in ("status", "metadata", "predict", "classify", "regress")
    )
    + tuple(
        # The Open Inference Protocol's gRPC service on server.grpc_port (gateway.grpcfront.oip).
        f"grpc_v2_{kind}"
        for kind in ("live", "ready", "server_metadata", "model_ready", "model_metadata", "infer")
    )
)
ROUTES = (*API_ROUTES, "healthz", "readyz", "metrics", "openapi", "docs", "unmatched")
ROUTES += ("status_page", "status_json", "status_asset")  # /status, /status.json, its script and CSS


_MAX_BOUND_CHILDREN = 4096


class HttpChildren(NamedTuple):
    requests: Counter
    latency: Histogram
    request_size: Histogram
    response_size: Histogram


class Metrics:
    """The gateway's metrics on one registry; tests pass a fresh ``CollectorRegistry``."""

    def __init__(
        self, registry: CollectorRegistry, known_models: Iterable[str] = (), backends: Iterable[str] = ()
    ) -> None:
        self.registry = registry
        self.known_models = frozenset(known_models)
        _add_process_collectors(registry)
        http = ("route", "model", "version", "verb", "code", "arm")
        self.requests = Counter(
            "http_requests", "HTTP requests answered.", http, namespace=NAMESPACE, registry=registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request start to response written.",
            http,
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.request_size = Histogram(
            "http_request_size_bytes",
            "Request body size.",
            ("route", "verb"),
            namespace=NAMESPACE,
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.response_size = Histogram(
            "http_response_size_bytes",
            "Response body size.",
            ("route", "verb"),
            namespace=NAMESPACE,
            buckets=SIZE_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "Requests being handled.",
            ("route",),
            namespace=NAMESPACE,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.backend_rpc = Histogram(
            "backend_rpc_duration_seconds",
            "gRPC calls to backends, by final status.",
            ("backend", "rpc", "grpc_code"),
            namespace=NAMESPACE,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.backend_up = Gauge(
            "backend_up",
            "1 when the backend answered its last health probe.",
            ("backend",),
            namespace=NAMESPACE,
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.signature_cache = Counter(
            "signature_cache_requests",
            "Signature lookups, by hit or miss.",
            ("result",),
            namespace=NAMESPACE,
            registry=registry,
        )
        self.batch_size = Histogram(
            "batch_size",
            "Requests merged into one backend Predict by micro-batching.",
            ("model",),
            namespace=NAMESPACE,
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.loop_lag = Histogram(
            "event_loop_lag_seconds",
            "How late the event loop ran a callback scheduled every 100 ms.",
            namespace=NAMESPACE,
            buckets=LOOP_LAG_BUCKETS,
            registry=registry,
        )
        self.loop_stalls = Counter(
            "event_loop_stalls",
            "Times the event loop was blocked longer than server.loop_stall_warning_seconds.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.build_info = Gauge(
            "build_info",
            "Always 1; labels carry the version.",
            ("version", "python_version"),
            namespace=NAMESPACE,
            registry=registry,
            multiprocess_mode="max",
        )
        self.build_info.labels(gateway.__version__, platform.python_version()).set(1)
        self._declare_shadow(registry)
        self._http: dict[tuple[str, str, str, str, str, str], HttpChildren] = {}
        # Bound once: the dispatcher moves one of these up and down on every request.
        self.in_flight_by_route = {route: self.in_flight.labels(route) for route in ROUTES}
        for result in ("hit", "miss"):
            self.signature_cache.labels(result)
        self.set_backends(backends)

    def http_children(self, route: str, model: str, version: str, verb: str, code: str, arm: str = "") -> HttpChildren:
        """The four per-request series for one label set, bound once and then reused.

        ``labels()`` validates, stringifies and locks on every call, about a microsecond each;
        a request needs four. Label values are bounded (routes, configured models), and the
        cache is cleared if hostile version numbers ever make it large.
        """
        key = (route, model, version, verb, code, arm)
        children = self._http.get(key)
        if children is None:
            if len(self._http) >= _MAX_BOUND_CHILDREN:
                self._http.clear()
            children = self._http[key] = HttpChildren(
                self.requests.labels(*key),
                self.latency.labels(*key),
                self.request_size.labels(route, verb),
                self.response_size.labels(route, verb),
            )
        return children

    def set_known_models(self, names: Iterable[str]) -> None:
        """Replace the ``model`` label values kept (a config reload may add or drop models)."""
        self.known_models = frozenset(names)

    def set_backends(self, names: Iterable[str]) -> None:
        """Export ``backend_up`` for exactly these backends, 0 until their first probe answers."""
        wanted = set(names)
        for (name,) in _label_values(self.backend_up):
            if name not in wanted:
                self.backend_up.remove(name)
        known = {labels[0] for labels in _label_values(self.backend_up)}
        for name in wanted - known:
            self.backend_up.labels(name).set(0)

    def model_label(self, name: str | None) -> str:
        if not name:
            return ""
        return name if name in self.known_models else OTHER

    def version_label(self, model: str, version: int | None, label: str | None) -> str:
        if model == OTHER:
            return ""
        if version is not None:
            return str(version)
        return f"label:{label}" if label is not None else "latest"

    # ---- shadow traffic (gateway/pipeline/shadow.py)

    def _declare_shadow(self, registry: CollectorRegistry) -> None:
        self.shadow_requests = Counter(
            "shadow_requests",
            "Shadow copies by outcome: agree, disagree, error (failed, timed out) or dropped (cap full).",
            ("deployment", "arm", "result"),
            namespace=NAMESPACE,
            registry=registry,
        )
        self.shadow_max_abs_diff = Histogram(
            "shadow_max_abs_diff",
            "Largest absolute difference between a shadow's values and the primary's, per compared reply.",
            ("deployment", "arm"),
            namespace=NAMESPACE,
            buckets=SHADOW_DIFF_BUCKETS,
            registry=registry,
        )
        self.shadow_in_flight = Gauge(
            "shadow_requests_in_flight",
            "Shadow calls started and not yet compared.",
            namespace=NAMESPACE,
            registry=registry,
            multiprocess_mode="livesum",
        )

    def set_shadow_arms(self, arms: Iterable[tuple[str, str]]) -> None:
        """Export every (deployment, arm) series at 0 from the start: labels come from config only."""
        for deployment, arm in arms:
            for result in SHADOW_RESULTS:
                self.shadow_requests.labels(deployment, arm, result)
            self.shadow_max_abs_diff.labels(deployment, arm)


# 1e-9 .. 1e3 by decades: float32 noise sits near 1e-7, a different model's answer near 1.
SHADOW_DIFF_BUCKETS = tuple(10.0**k for k in range(-9, 4))
SHADOW_RESULTS = ("agree", "disagree", "error", "dropped")


def _label_values(metric: Gauge) -> list[tuple[str, ...]]:
    # prometheus_client has no public way to list a metric's children; _metrics is stable since 0.4.
    return [tuple(labels) for labels in metric._metrics]


def _add_process_collectors(registry: CollectorRegistry) -> None:
    """CPU, memory, fds and start time of this process, plus the Python platform, on ``registry``."""
    if registry is REGISTRY:
        return  # prometheus_client already registered them on its global registry
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)


def multiprocess_dir() -> str | None:
    """The directory worker processes write their metric values to, when running ``--workers N``."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def served_registry(metrics: Metrics) -> CollectorRegistry:
    """What the metrics page shows: this process's registry, or the sum over all workers."""
    if multiprocess_dir() is None:
        return metrics.registry
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


def exposition(metrics: Metrics) -> tuple[bytes, str]:
    """The metrics page body and its content type (``served_registry``)."""
    return generate_latest(served_registry(metrics)), CONTENT_TYPE_LATEST
