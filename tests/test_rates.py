"""``gateway.ops.rates``: snapshots read from a real registry, rates over a window, and quantiles that
interpolate as PromQL's ``histogram_quantile`` does (worked examples computed by hand here)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from gateway.ops import rates
from gateway.ops.metrics import LATENCY_BUCKETS, Metrics

INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        # rank 20 of 40 falls in (0.1, 0.5] holding 20, 10 below it: 0.1 + 0.4 * 10/20
        (0.5, {0.1: 10, 0.5: 30, 1.0: 40, INF: 40}, 0.3),
        # rank 39.6 falls in (0.5, 1] holding 10, 30 below it: 0.5 + 0.5 * 9.6/10
        (0.99, {0.1: 10, 0.5: 30, 1.0: 40, INF: 40}, 0.98),
        # the first bucket starts at 0
        (0.5, {0.1: 10, INF: 10}, 0.05),
        # the rank falls in +Inf: the highest finite bound
        (0.99, {0.1: 1, 0.5: 2, INF: 10}, 0.5),
        # no observations at all
        (0.5, {0.1: 0, INF: 0}, None),
        (0.5, {}, None),
    ],
)
def test_histogram_quantile_worked_examples(q: float, buckets: dict[float, float], expected: float | None) -> None:
    assert rates.histogram_quantile(q, buckets) == (pytest.approx(expected) if expected is not None else None)


@given(st.lists(st.sampled_from(LATENCY_BUCKETS[:-1]), min_size=1, max_size=200), st.floats(0.01, 0.99))
def test_a_quantile_lies_in_the_bucket_holding_the_true_one(values: list[float], q: float) -> None:
    """Observations exactly on bucket bounds: the estimate is inside the bucket of the true quantile."""
    registry = CollectorRegistry()
    series = Metrics(registry, ["m"]).http_children("deployment_predict", "m", "", "predict", "200")
    for value in values:
        series.latency.observe(value)
    (group,) = rates.snapshot(registry).groups.values()
    estimate = rates.histogram_quantile(q, group.buckets)
    ordered = sorted(values)
    true = ordered[max(math.ceil(q * len(ordered)) - 1, 0)]
    lower = max((bound for bound in LATENCY_BUCKETS if bound < true), default=0.0)
    assert estimate is not None and lower <= estimate <= true + 1e-12  # lower + (upper - lower) * 1.0 may round up


def test_rates_come_from_two_snapshots_of_the_registry() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, ["dep"])
    old = rates.snapshot(registry, now=100.0)
    for code, count in (("200", 8), ("503", 2)):
        for _ in range(count):
            series = metrics.http_children("deployment_predict", "dep", "", "predict", code, "v1")
            series.requests.inc()
            series.latency.observe(0.003)
    metrics.http_children("healthz", "", "", "", "200").requests.inc()  # no model: not a group
    new = rates.snapshot(registry, now=105.0)
    window = rates.window(old, new)
    assert window.seconds == 5.0
    assert set(window.groups) == {("dep", "v1")}
    group = window.groups["dep", "v1"]
    assert group.requests_total == 10
    assert group.requests_per_second == pytest.approx(2.0)
    assert group.errors_per_second == pytest.approx(0.4)
    assert group.error_ratio == pytest.approx(0.2)
    # every observation is in (0.0025, 0.005]: linear inside it
    assert group.p50_seconds == pytest.approx(0.0025 + 0.0025 * 0.5)
    assert group.p99_seconds == pytest.approx(0.0025 + 0.0025 * 0.99)


def test_a_window_without_requests_has_no_rates_to_show() -> None:
    registry = CollectorRegistry()
    Metrics(registry, ["dep"]).http_children("deployment_predict", "dep", "", "predict", "200").requests.inc()
    first = rates.snapshot(registry, now=1.0)
    window = rates.window(first, rates.snapshot(registry, now=2.0))
    group = window.groups["dep", ""]
    assert (group.requests_total, group.requests_per_second, group.error_ratio, group.p50_seconds) == (
        1.0,
        0.0,
        None,
        None,
    )
    same = rates.window(first, first).groups["dep", ""]
    assert same.requests_per_second is None  # a zero-length window divides by nothing


def test_a_counter_that_went_down_counts_as_no_increase() -> None:
    old = rates.Snapshot(0.0, {("m", ""): rates.Series(10.0, 2.0, {INF: 10.0})}, {("d", "a", "agree"): 5.0})
    new = rates.Snapshot(5.0, {("m", ""): rates.Series(4.0, 0.0, {INF: 4.0})}, {("d", "a", "agree"): 1.0})
    window = rates.window(old, new)
    assert window.groups["m", ""].requests_per_second == 0.0
    assert window.shadows["d", "a", "agree"] == 0.0
    assert window.shadow_totals["d", "a", "agree"] == 1.0


def test_the_ring_compares_with_the_oldest_snapshot_inside_the_window() -> None:
    ring = rates.Ring(window_seconds=60.0, sample_seconds=5.0)
    empty: dict[rates.Group, rates.Series] = {}
    for at in range(0, 75, 5):
        ring.add(rates.Snapshot(float(at), empty, {}))
    assert len(ring) == 13  # 60 s of 5 s samples, both ends included
    assert ring.window(rates.Snapshot(70.0, empty, {})).seconds == 60.0  # against t=10, the oldest kept
    assert ring.window(rates.Snapshot(72.0, empty, {})).seconds == 57.0  # t=10 is now too old: t=15
    assert rates.Ring().window(rates.Snapshot(3.0, empty, {})).seconds == 0.0
