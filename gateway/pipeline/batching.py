"""Opt-in micro-batching: concurrent predicts to one servable merged into one Predict.

Requests that already passed validation, and that go to the same (backend, model, version or
label, signature) with the same dtypes and non-batch shapes, are queued for at most
``window_seconds`` and up to ``max_batch_size`` rows. The queue is sent as one Predict whose
inputs are the members' inputs concatenated along dim 0; each output is sliced back, so every
client gets exactly its own rows. A model is batched only when its signature says every input
and output is batch-major (dim 0 of unknown size), since slicing anything else would hand
clients each other's values. If the merged call fails, or its outputs are not batch-major
after all, every member is sent again on its own, so one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from gateway.codec import messages, wire
from gateway.codec.predict import Tensor
from gateway.config import BatchingSettings
from gateway.errors import GatewayError

Arrays = dict[str, npt.NDArray[Any]]


class Answer(NamedTuple):
    """A Predict reply decoded: the output arrays, and the version ModelServer says answered."""

    outputs: Arrays
    version: int | None


Call = Callable[[bytes], Awaitable[Answer]]


def rows_of(tensors: Mapping[str, Tensor]) -> int | None:
    """The common dim 0 of all inputs, or None when they have none in common."""
    sizes = {t.shape[0] if t.shape else None for t in tensors.values()}
    size = sizes.pop() if len(sizes) == 1 else None
    return size if size else None


@dataclass(frozen=True, slots=True)
class BatchKey:
    """What must match for two requests to share a Predict."""

    servable: tuple[str, str, int | None, str | None]  # backend, model, version, label
    signature: str
    inputs: tuple[tuple[str, int, tuple[int, ...]], ...]  # alias, dtype, shape without dim 0
    output_filter: tuple[str, ...] = ()  # the outputs asked for; () means all


def batch_key(
    servable: tuple[str, str, int | None, str | None],
    signature: str,
    tensors: Mapping[str, Tensor],
    output_filter: tuple[str, ...] = (),
) -> BatchKey:
    inputs = tuple((alias, t.dtype.enum, t.shape[1:]) for alias, t in sorted(tensors.items()))
    return BatchKey(servable, signature, inputs, output_filter)


@dataclass(slots=True)
class _Member:
    tensors: Mapping[str, Tensor]
    rows: int
    future: asyncio.Future[Answer | None]


@dataclass(slots=True)
class _Batch:
    call: Call
    spec: messages.ModelSpec
    observe: Callable[[int], None]
    output_filter: tuple[str, ...] = ()
    members: list[_Member] = field(default_factory=list)
    rows: int = 0
    timer: asyncio.TimerHandle | None = None


def merge(members: list[_Member]) -> dict[str, Tensor]:
    """The members' inputs stacked along dim 0, in member order."""
    merged = {}
    for alias, first in members[0].tensors.items():
        shape = (sum(m.rows for m in members), *first.shape[1:])
        if first.dtype.is_string:
            values: Any = [v for m in members for v in m.tensors[alias].values]
        else:
            values = np.concatenate([np.asarray(m.tensors[alias].values) for m in members])
        merged[alias] = Tensor(first.dtype, shape, values)
    return merged


def split(outputs: Arrays, members: list[_Member]) -> list[Arrays] | None:
    """Each member's rows of every output, or None when the outputs are not batch-major."""
    total = sum(m.rows for m in members)
    if not outputs or any(a.ndim == 0 or a.shape[0] != total for a in outputs.values()):
        return None
    parts, start = [], 0
    for member in members:
        stop = start + member.rows
        parts.append({alias: array[start:stop] for alias, array in outputs.items()})
        start = stop
    return parts


class Batcher:
    """The open batches of one gateway process, one per :class:`BatchKey`."""

    def __init__(self) -> None:
        self._open: dict[BatchKey, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        key: BatchKey,
        settings: BatchingSettings,
        tensors: Mapping[str, Tensor],
        rows: int,
        start: Callable[[], _Batch],
    ) -> Answer | None:
        """This request's own output rows, or None: then the caller sends it alone."""
        batch = self._open.get(key)
        if batch is not None and batch.rows + rows > settings.max_batch_size:
            self._flush(key)
            batch = None
        if batch is None:
            batch = self._open[key] = start()
            batch.timer = asyncio.get_running_loop().call_later(settings.window_seconds, self._flush, key)
        future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        batch.members.append(_Member(tensors, rows, future))
        batch.rows += rows
        if batch.rows >= settings.max_batch_size:
            self._flush(key)
        return await future

    def _flush(self, key: BatchKey) -> None:
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        # Its own task: a member whose client goes away must not cancel the others' call.
        task = asyncio.ensure_future(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: _Batch) -> None:
        members = batch.members
        parts: list[Arrays] | None = None
        version = None
        if len(members) > 1:
            batch.observe(len(members))
            try:
                outputs, version = await batch.call(
                    wire.predict_request(batch.spec, merge(members), batch.output_filter)
                )
                parts = split(outputs, members)
            except GatewayError:
                parts = None  # each member retries alone and gets its own answer or error
            except BaseException:
                _settle(members, None, None)
                raise
        _settle(members, parts, version)


def _settle(members: list[_Member], parts: list[Arrays] | None, version: int | None) -> None:
    for index, member in enumerate(members):
        if not member.future.done():
            member.future.set_result(None if parts is None else Answer(parts[index], version))


async def predict(
    batcher: Batcher,
    settings: BatchingSettings,
    key: BatchKey,
    sig: messages.SignatureDef,
    spec: messages.ModelSpec,
    tensors: Mapping[str, Tensor],
    call: Call,
    observe: Callable[[int], None],
) -> Answer:
    """The outputs of one validated predict: through a batch when ``settings`` and ``sig`` allow it.

    ``call`` sends a serialised PredictRequest and decodes the reply (a merged call's version is
    every member's, since they share one servable); ``observe`` records the size
    of each merged batch.
    """
    if settings.enabled:
        rows = rows_of(tensors)
        if rows is not None and rows < settings.max_batch_size and messages.batchable(sig):
            start = lambda: _Batch(call, spec, observe, key.output_filter)  # noqa: E731
            answer = await batcher.submit(key, settings, tensors, rows, start)
            if answer is not None:
                return answer
    return await call(wire.predict_request(spec, tensors, key.output_filter))
