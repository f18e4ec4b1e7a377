"""The signature cache: hits, TTL, one backend call for concurrent misses, invalidation."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from gateway._pb.tensorflow.core.protobuf import meta_graph_pb2
from gateway.ops.metrics import Metrics
from gateway.pipeline.signatures import CacheKey, SignatureCache, Signatures

KEY = CacheKey("default", "m", None, None)


class Backend:
    """Counts fetches; each answer is distinguishable by its method_name."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail

    async def fetch(self) -> Signatures:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("backend down")
        return {"serving_default": meta_graph_pb2.SignatureDef(method_name=f"call-{self.calls}")}


def cache(ttl: float = 60.0, max_entries: int = 8) -> tuple[SignatureCache, Metrics]:
    metrics = Metrics(CollectorRegistry())
    return SignatureCache(ttl_seconds=ttl, max_entries=max_entries, metrics=metrics), metrics


def count(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("tfs_gateway_signature_cache_requests_total", {"result": result})
    return value or 0.0


async def test_second_lookup_is_a_hit() -> None:
    sigs, metrics = cache()
    backend = Backend()
    first = await sigs.get(KEY, backend.fetch)
    second = await sigs.get(KEY, backend.fetch)
    assert first is second and backend.calls == 1
    assert (count(metrics, "hit"), count(metrics, "miss")) == (1.0, 1.0)


async def test_concurrent_misses_share_one_backend_call() -> None:
    sigs, _ = cache()
    backend = Backend(delay=0.05)
    results = await asyncio.gather(*(sigs.get(KEY, backend.fetch) for _ in range(20)))
    assert backend.calls == 1
    assert all(r is results[0] for r in results)


async def test_ttl_expiry_refetches() -> None:
    sigs, _ = cache(ttl=0.0)
    backend = Backend()
    await sigs.get(KEY, backend.fetch)
    again = await sigs.get(KEY, backend.fetch)
    assert backend.calls == 2 and again["serving_default"].method_name == "call-2"


async def test_invalidate_drops_every_version_of_the_model() -> None:
    sigs, _ = cache()
    backend = Backend()
    v1, other = CacheKey("default", "m", 1, None), CacheKey("default", "n", None, None)
    for key in (KEY, v1, other):
        await sigs.get(key, backend.fetch)
    sigs.invalidate("default", "m")
    await sigs.get(KEY, backend.fetch)
    await sigs.get(v1, backend.fetch)
    await sigs.get(other, backend.fetch)
    assert backend.calls == 5  # m twice more, n still cached


async def test_failures_are_not_cached_and_reach_every_waiter() -> None:
    sigs, _ = cache()
    backend = Backend(delay=0.02, fail=True)
    results = await asyncio.gather(*(sigs.get(KEY, backend.fetch) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    backend.fail = False
    assert (await sigs.get(KEY, backend.fetch))["serving_default"].method_name == "call-2"


async def test_a_cancelled_waiter_does_not_cancel_the_shared_lookup() -> None:
    sigs, _ = cache()
    backend = Backend(delay=0.05)
    first = asyncio.ensure_future(sigs.get(KEY, backend.fetch))
    second = asyncio.ensure_future(sigs.get(KEY, backend.fetch))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second)["serving_default"].method_name == "call-1"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert backend.calls == 1


async def test_bounded_entries_evict_least_recently_used() -> None:
    sigs, _ = cache(max_entries=2)
    backend = Backend()
    keys = [CacheKey("default", f"m{i}", None, None) for i in range(3)]
    for key in keys:
        await sigs.get(key, backend.fetch)
    await sigs.get(keys[2], backend.fetch)
    await sigs.get(keys[0], backend.fetch)  # evicted by m2, fetched again
    assert backend.calls == 4
