"""A keyed, de-duplicating, delayed work queue for asyncio (like client-go's workqueue).

A key is processed by at most one worker at a time; adding a key that is already queued keeps
the earlier due time; adding a key that is being processed queues it again for after the
current run. Its size is bounded by the number of distinct keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time


class WorkQueue:
    """Keys to process, each due at a time (monotonic clock)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._processing: set[str] = set()
        self._again: dict[str, float] = {}
        self._counter = itertools.count()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._due) + len(self._again)

    def add(self, key: str, delay: float = 0.0) -> None:
        """Process ``key`` after ``delay`` seconds (sooner if it is already due sooner)."""
        due = time.monotonic() + max(0.0, delay)
        if key in self._processing:
            self._again[key] = min(due, self._again.get(key, due))
            return
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._counter), key))
        self._changed.set()

    async def get(self) -> str:
        """Wait for the next due key and mark it as being processed."""
        while True:
            while self._heap:
                due, _, key = self._heap[0]
                if self._due.get(key) != due:
                    heapq.heappop(self._heap)  # superseded by an earlier add
                    continue
                wait = due - time.monotonic()
                if wait > 0:
                    break
                heapq.heappop(self._heap)
                del self._due[key]
                self._processing.add(key)
                return key
            self._changed.clear()
            timeout = self._heap[0][0] - time.monotonic() if self._heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    def done(self, key: str) -> None:
        """``key`` was processed; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        again = self._again.pop(key, None)
        if again is not None:
            self.add(key, max(0.0, again - time.monotonic()))
