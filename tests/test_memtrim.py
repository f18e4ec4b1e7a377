"""The heap is trimmed once the last large request in flight is done, not per request."""

from __future__ import annotations

import asyncio

from gateway.ops import memtrim


async def test_trims_once_after_the_last_large_request() -> None:
    calls: list[int] = []
    trimmer = memtrim.Trimmer(lambda: calls.append(1))
    assert not trimmer.enter(memtrim.TRIM_AFTER_BYTES - 1)  # small bodies are not counted
    assert trimmer.enter(memtrim.TRIM_AFTER_BYTES)
    assert trimmer.enter(10 * memtrim.TRIM_AFTER_BYTES)
    trimmer.leave()
    await asyncio.sleep(memtrim.DELAY_SECONDS * 3)
    assert calls == []  # one large request still in flight
    trimmer.leave()
    await asyncio.sleep(memtrim.DELAY_SECONDS * 3)
    assert calls == [1]


async def test_a_new_large_request_within_the_delay_postpones_the_trim() -> None:
    calls: list[int] = []
    trimmer = memtrim.Trimmer(lambda: calls.append(1))
    trimmer.enter(memtrim.TRIM_AFTER_BYTES)
    trimmer.leave()
    trimmer.enter(memtrim.TRIM_AFTER_BYTES)  # arrives before the timer fires
    await asyncio.sleep(memtrim.DELAY_SECONDS * 3)
    assert calls == []
    trimmer.leave()
    await asyncio.sleep(memtrim.DELAY_SECONDS * 3)
    assert calls == [1]


def test_the_real_trim_is_found_on_glibc() -> None:
    # This machine is glibc; elsewhere _libc_trim returns None and the trimmer is inert.
    trim = memtrim._libc_trim()
    assert trim is not None
    trim()
