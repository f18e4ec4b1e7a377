"""Cached SignatureDefs, per (backend, model, version or label).

TF Serving's REST front end converts JSON with the signature's input dtypes, so the
gateway needs the signature before it can build a tensor. Lookups are cached with a
TTL, concurrent misses share one GetModelMetadata call, and an entry is dropped when
the backend says its servable is gone (NOT_FOUND), so a removed version is noticed
on the next request rather than after the TTL.

``generation`` counts every change to what is cached, so a document built from ``entries()``
(the OpenAPI description) can key itself on it and rebuild only when a signature changed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.codec.messages import Signatures
from gateway.ops.metrics import Metrics

Fetch = Callable[[], Awaitable[Signatures]]


@dataclass(frozen=True, slots=True)
class CacheKey:
    backend: str
    model: str
    version: int | None
    label: str | None


class SignatureCache:
    def __init__(self, *, ttl_seconds: float, max_entries: int, metrics: Metrics) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._metrics = metrics
        self._entries: OrderedDict[CacheKey, tuple[float, Signatures]] = OrderedDict()
        self._pending: dict[CacheKey, asyncio.Future[Signatures]] = {}
        self.generation = 0  # bumped whenever an entry is stored or dropped
        self._hits = metrics.signature_cache.labels("hit")
        self._misses = metrics.signature_cache.labels("miss")

    def cached(self, key: CacheKey) -> Signatures | None:
        """A fresh entry, counted as a hit; None (not counted) when ``get`` must load it."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        self._entries.move_to_end(key)
        self._hits.inc()
        return entry[1]

    async def get(self, key: CacheKey, fetch: Fetch) -> Signatures:
        hit = self.cached(key)
        if hit is not None:
            return hit
        self._misses.inc()
        task = self._pending.get(key)
        if task is None:
            # A task of its own, so a client that disconnects does not cancel the
            # lookup that other requests are waiting for.
            task = asyncio.ensure_future(self._load(key, fetch))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        return await asyncio.shield(task)

    async def _load(self, key: CacheKey, fetch: Fetch) -> Signatures:
        sigs = await fetch()
        self._store(key, sigs)
        return sigs

    def _settle(self, key: CacheKey, task: asyncio.Future[Signatures]) -> None:
        self._pending.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure does not warn

    def _store(self, key: CacheKey, sigs: Signatures) -> None:
        self._entries[key] = (time.monotonic() + self._ttl, sigs)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        self.generation += 1

    def entries(self) -> list[tuple[CacheKey, Signatures]]:
        """Every servable seen and still held (fresh or expired), without counting hits or misses."""
        return [(key, entry[1]) for key, entry in self._entries.items()]

    def invalidate(self, backend: str, model: str) -> None:
        """Forget every entry of a model: a version or label vanished or moved."""
        for key in [k for k in self._entries if k.backend == backend and k.model == model]:
            del self._entries[key]
            self.generation += 1

    def clear(self) -> None:
        self._entries.clear()
        self.generation += 1
