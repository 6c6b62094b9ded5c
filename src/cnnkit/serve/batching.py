"""Micro-batching: images from concurrent requests run through the model together.

Requests put their images in one bounded queue; a single collector takes the first waiting image,
waits up to `max_wait_ms` for more (never past `max_batch`), and runs the batch on one inference
thread, so the event loop keeps accepting and answering while the model computes. While a batch
runs, new images queue up, and the next batch takes them at once: under load the batches fill
without waiting. A full queue refuses new work at once (503 with Retry-After) instead of growing
without limit; `close()` stops admitting and finishes what was admitted (graceful shutdown).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cnnkit.serve.limits import Rejected


class MicroBatcher:
    """`run_batch(items) -> results` (same length and order) called on the inference thread with
    1..max_batch items; `on_batch(size, seconds)` is told each batch's size and run time."""

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]], max_batch: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 256,
                 on_batch: Callable[[int, float], None] | None = None):
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.run_batch, self.max_batch, self.max_wait = run_batch, max_batch, max_wait_ms / 1000.0
        self.max_queue, self.on_batch = max_queue, on_batch
        # One thread: batches (and explanations, which use the same model) never overlap.
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="cnnkit-inference")
        self._pending: deque[tuple[Any, asyncio.Future]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    @property
    def depth(self) -> int:
        """Images admitted and not yet taken into a batch."""
        return len(self._pending)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._collect())

    def submit(self, items: list[Any]) -> list[asyncio.Future]:
        """Admit all of `items` or none: raises `Rejected` (503, Retry-After) when the queue has no
        room for them or the server is shutting down. Each future resolves to its item's result."""
        if self._closing or self._task is None:
            raise Rejected(503, "The server is shutting down; retry on another instance.", {"Retry-After": "1"})
        if len(self._pending) + len(items) > self.max_queue:
            raise Rejected(503, f"The server is busy ({len(self._pending)} images queued, at most "
                                f"{self.max_queue}); retry in a second.", {"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self._pending.extend(zip(items, futures))
        self._wake.set()
        return futures

    async def run_exclusive(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the inference thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def close(self) -> None:
        """Stop admitting, finish every admitted image, then release the thread."""
        self._closing = True
        if self._task is not None:
            self._wake.set()
            await self._task
        self.executor.shutdown(wait=True)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            deadline = loop.time() + self.max_wait
            while len(self._pending) < self.max_batch and not self._closing:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            taken = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            taken = [(item, fut) for item, fut in taken if not fut.done()]  # timed out while queued
            if taken:
                await self._run(loop, taken)

    async def _run(self, loop: asyncio.AbstractEventLoop, taken: list[tuple[Any, asyncio.Future]]) -> None:
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, [item for item, _ in taken])
        except Exception as e:  # noqa: BLE001 - the requests get the error; the collector keeps serving
            for _, fut in taken:
                if not fut.done():
                    fut.set_exception(e)
            return
        if self.on_batch is not None:
            self.on_batch(len(taken), time.perf_counter() - start)
        for (_, fut), result in zip(taken, results):
            if not fut.done():
                fut.set_result(result)
