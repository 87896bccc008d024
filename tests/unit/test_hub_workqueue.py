"""Unit tests of the hub's keyed, de-duplicating, delayed work queue (``kommons.hub.workqueue``).

Behaviour matrix:

- dedupe: a key added while it is queued is queued once, at the earlier of the two due
  times (a later add never postpones it; an earlier add brings it forward).
- delay: keys come out in due order; a key is not handed out before its delay.
- exclusivity: a key being processed is never handed to a second worker; added meanwhile, it
  comes back once (deduped) after ``done()``, and not before; ``done()`` without a re-add
  does not queue it again.
- ``len()``: queued keys plus keys re-added while processing (the one being processed is not
  counted).

The tests run on ``asyncio.run`` (no asyncio plugin); delays are small and the assertions are
about order and presence, never about how long something took. Where a test needs a key *not*
to come out, it is due seconds later and the test waits 50 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from kommons.hub.workqueue import WorkQueue

SOON = 0.05
"""Long enough to wait for a key that is due now or nearly."""


def run(test: Callable[[WorkQueue], Awaitable[None]]) -> None:
    async def main() -> None:
        await asyncio.wait_for(test(WorkQueue()), timeout=10)

    asyncio.run(main())


async def next_key(queue: WorkQueue) -> str:
    return await asyncio.wait_for(queue.get(), timeout=5)


async def nothing_due(queue: WorkQueue) -> bool:
    """Whether no key comes out within ``SOON``."""
    try:
        key = await asyncio.wait_for(queue.get(), timeout=SOON)
    except TimeoutError:
        return True
    queue.done(key)
    return False


# --- dedupe -------------------------------------------------------------------------------


def test_a_queued_key_is_queued_once() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("a")
        queue.add("a")
        queue.add("a", 0.01)
        assert len(queue) == 1
        assert await next_key(queue) == "a"
        queue.done("a")
        assert len(queue) == 0
        assert await nothing_due(queue)

    run(test)


def test_a_later_add_does_not_postpone_a_queued_key() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("a")
        queue.add("a", 60)
        assert await next_key(queue) == "a"

    run(test)


def test_an_earlier_add_brings_a_queued_key_forward() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("a", 60)
        queue.add("b", 0.02)
        queue.add("a")
        assert len(queue) == 2
        assert await next_key(queue) == "a"
        assert await next_key(queue) == "b"
        assert len(queue) == 0

    run(test)


# --- delay --------------------------------------------------------------------------------


def test_keys_come_out_in_due_order() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("late", 0.04)
        queue.add("middle", 0.02)
        queue.add("now")
        got = [await next_key(queue) for _ in range(3)]
        assert got == ["now", "middle", "late"]

    run(test)


def test_a_delayed_key_is_not_handed_out_early() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("later", 5)
        assert await nothing_due(queue)
        assert len(queue) == 1

    run(test)


def test_a_waiting_worker_sees_a_key_added_after_it_started_waiting() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("later", 5)
        worker = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0.01)
        assert not worker.done()
        queue.add("now")
        assert await asyncio.wait_for(worker, timeout=5) == "now"

    run(test)


# --- exclusivity --------------------------------------------------------------------------


def test_a_key_being_processed_is_not_handed_out_again() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("k")
        assert await next_key(queue) == "k"
        queue.add("k")
        queue.add("k")
        assert len(queue) == 1
        assert await nothing_due(queue)  # a second worker gets nothing
        queue.done("k")
        assert await next_key(queue) == "k"  # ... until the first one is done
        queue.done("k")
        assert len(queue) == 0
        assert await nothing_due(queue)

    run(test)


def test_other_keys_flow_while_one_is_processed() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("k")
        queue.add("j", 0.01)
        assert await next_key(queue) == "k"
        queue.add("k")
        assert await next_key(queue) == "j"

    run(test)


def test_done_without_a_re_add_does_not_queue_again() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("k")
        assert await next_key(queue) == "k"
        queue.done("k")
        assert len(queue) == 0
        assert await nothing_due(queue)

    run(test)


def test_a_re_add_while_processing_keeps_its_delay() -> None:
    async def test(queue: WorkQueue) -> None:
        queue.add("k")
        assert await next_key(queue) == "k"
        queue.add("k", 5)
        queue.done("k")
        assert len(queue) == 1
        assert await nothing_due(queue)

    run(test)


@pytest.mark.parametrize("workers", [2, 5])
def test_concurrent_workers_never_share_a_key(workers: int) -> None:
    """Workers re-add the key they hold; none may ever get a key another one holds."""
    keys = ["a", "b", "c"]
    rounds = 60

    async def test(queue: WorkQueue) -> None:
        active: set[str] = set()
        handled: list[str] = []
        overlaps: list[str] = []

        async def worker() -> None:
            while len(handled) < rounds:
                key = await queue.get()
                if key in active:
                    overlaps.append(key)
                active.add(key)
                handled.append(key)
                queue.add(key)  # an event for the key arrives while it is processed
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                active.discard(key)
                queue.done(key)

        for key in keys:
            queue.add(key)
        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        while len(handled) < rounds:
            await asyncio.sleep(0.001)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        assert overlaps == []
        assert set(handled) == set(keys)  # every key keeps coming back
        assert len(queue) <= len(keys)  # bounded by the distinct keys

    run(test)
