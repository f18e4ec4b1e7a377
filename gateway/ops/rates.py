"""Live rates from the gateway's own metrics: a small ring of snapshots, and PromQL's arithmetic on it.

Every ``SAMPLE_SECONDS`` the sampler copies the cumulative values the status page needs out of
the registry: per ``(model, arm)`` group the request count, the 5xx count and the latency
histogram's cumulative buckets (from ``tfs_gateway_http_requests_total`` and
``tfs_gateway_http_request_duration_seconds``), and per ``(deployment, arm, result)`` the shadow
counter ``tfs_gateway_shadow_requests_total``, read by name so it is simply absent until something
declares it. ``model`` is the metrics' bounded label: a deployment id, a configured model name,
or ``other``.

A window compares a fresh snapshot with the oldest one kept within the last ``WINDOW_SECONDS``
(since start, early on), as ``rate()`` would, and a quantile interpolates linearly inside the
bucket the rank falls in, as ``histogram_quantile()`` does. Counters only grow in one process;
a delta that shrinks (a worker restarted under ``--workers``) counts as 0.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from gateway.ops.metrics import NAMESPACE, multiprocess_dir

SAMPLE_SECONDS = 5.0
WINDOW_SECONDS = 60.0
REQUESTS = f"{NAMESPACE}_http_requests"
LATENCY = f"{NAMESPACE}_http_request_duration_seconds"
SHADOW = f"{NAMESPACE}_shadow_requests"
# The samples read, by name: collecting only these skips the process collector and every other
# histogram, a tenfold saving with many deployments.
SAMPLES = (f"{REQUESTS}_total", f"{LATENCY}_bucket", f"{SHADOW}_total")

Group = tuple[str, str]  # (model label, arm)
ShadowKey = tuple[str, str, str]  # (deployment, arm, result)


@dataclass(slots=True)
class Series:
    """One group's cumulative values: requests, 5xx answers, latency buckets by upper bound."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float  # time.monotonic()
    groups: Mapping[Group, Series]
    shadows: Mapping[ShadowKey, float]


def snapshot(registry: CollectorRegistry, now: float | None = None) -> Snapshot:
    """The cumulative values the status page needs, read once from ``registry``."""
    groups: dict[Group, Series] = {}
    shadows: dict[ShadowKey, float] = {}
    # Under --workers the registry is a MultiProcessCollector's, which describes no names, so a
    # restricted view of it would collect nothing: read it whole and let _READERS pick.
    families = registry.collect() if multiprocess_dir() else registry.restricted_registry(SAMPLES).collect()
    for family in families:
        reader = _READERS.get(family.name)
        if reader is not None:
            reader(family, groups, shadows)
    return Snapshot(time.monotonic() if now is None else now, groups, shadows)


def _series(groups: dict[Group, Series], labels: Mapping[str, str]) -> Series | None:
    model = labels.get("model", "")
    if not model:
        return None  # the gateway's own pages, and requests no model was named for
    key = (model, labels.get("arm", ""))
    found = groups.get(key)
    if found is None:
        found = groups[key] = Series()
    return found


def _read_requests(family: Metric, groups: dict[Group, Series], shadows: dict[ShadowKey, float]) -> None:
    for sample in family.samples:
        series = _series(groups, sample.labels) if sample.name.endswith("_total") else None
        if series is not None:
            series.requests += sample.value
            if sample.labels.get("code", "").startswith("5"):
                series.errors += sample.value


def _read_latency(family: Metric, groups: dict[Group, Series], shadows: dict[ShadowKey, float]) -> None:
    for sample in family.samples:
        series = _series(groups, sample.labels) if sample.name.endswith("_bucket") else None
        if series is not None:
            bound = float(sample.labels["le"])
            series.buckets[bound] = series.buckets.get(bound, 0.0) + sample.value


def _read_shadows(family: Metric, groups: dict[Group, Series], shadows: dict[ShadowKey, float]) -> None:
    for sample in family.samples:
        if sample.name.endswith("_total"):
            labels = sample.labels
            key = (labels.get("deployment", ""), labels.get("arm", ""), labels.get("result", ""))
            shadows[key] = shadows.get(key, 0.0) + sample.value


_Reader = Callable[[Metric, dict[Group, Series], dict[ShadowKey, float]], None]
_READERS: dict[str, _Reader] = {REQUESTS: _read_requests, LATENCY: _read_latency, SHADOW: _read_shadows}


@dataclass(frozen=True, slots=True)
class GroupRates:
    """One group over the window: per-second rates, the 5xx share, latency quantiles in seconds.
    ``None`` where there is nothing to compute from (no requests in the window)."""

    requests_total: float
    requests_per_second: float | None
    errors_per_second: float | None
    error_ratio: float | None
    p50_seconds: float | None
    p99_seconds: float | None


@dataclass(frozen=True, slots=True)
class Window:
    """What changed between two snapshots ``seconds`` apart."""

    seconds: float
    groups: Mapping[Group, GroupRates]
    shadows: Mapping[ShadowKey, float]  # increase in the window
    shadow_totals: Mapping[ShadowKey, float]  # since start


def window(old: Snapshot, new: Snapshot) -> Window:
    seconds = new.at - old.at
    groups = {key: _rates(old.groups.get(key), series, seconds) for key, series in new.groups.items()}
    shadows = {key: _delta(old.shadows.get(key, 0.0), value) for key, value in new.shadows.items()}
    return Window(seconds, groups, shadows, dict(new.shadows))


def _delta(old: float, new: float) -> float:
    return max(new - old, 0.0)


def _rates(old: Series | None, new: Series, seconds: float) -> GroupRates:
    base = old or Series()
    requests = _delta(base.requests, new.requests)
    errors = _delta(base.errors, new.errors)
    buckets = {bound: _delta(base.buckets.get(bound, 0.0), count) for bound, count in new.buckets.items()}
    per_second = seconds > 0
    return GroupRates(
        requests_total=new.requests,
        requests_per_second=requests / seconds if per_second else None,
        errors_per_second=errors / seconds if per_second else None,
        error_ratio=errors / requests if requests else None,
        p50_seconds=histogram_quantile(0.5, buckets),
        p99_seconds=histogram_quantile(0.99, buckets),
    )


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The ``q`` quantile of cumulative ``buckets`` (upper bound -> count, ``+Inf`` included), as
    PromQL's ``histogram_quantile``: linear inside the bucket the rank falls in, the highest finite
    bound when it falls in ``+Inf``, ``None`` when there are no observations."""
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]) or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    index = next(i for i, bound in enumerate(bounds) if buckets[bound] >= rank or math.isinf(bound))
    upper = bounds[index]
    if math.isinf(upper):
        return bounds[-2] if len(bounds) > 1 else None
    lower = bounds[index - 1] if index else 0.0
    below = buckets[lower] if index else 0.0
    inside = buckets[upper] - below
    if upper <= 0 or inside <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / inside


class Ring:
    """The snapshots of the last ``WINDOW_SECONDS``, one every ``SAMPLE_SECONDS`` (the sampler adds them)."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS, sample_seconds: float = SAMPLE_SECONDS) -> None:
        self.window_seconds = window_seconds
        self.sample_seconds = sample_seconds
        self._kept: deque[Snapshot] = deque(maxlen=math.ceil(window_seconds / sample_seconds) + 1)

    def add(self, taken: Snapshot) -> None:
        self._kept.append(taken)

    def window(self, now: Snapshot) -> Window:
        """``now`` against the oldest snapshot kept within the window (``now`` alone: a zero window)."""
        return window(self.base(now.at) or now, now)

    def base(self, at: float) -> Snapshot | None:
        return next((kept for kept in self._kept if at - kept.at <= self.window_seconds), None)

    def __len__(self) -> int:
        return len(self._kept)
