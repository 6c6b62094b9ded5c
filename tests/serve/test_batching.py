"""MicroBatcher: batches fill up to max_batch within max_wait, the queue is bounded (503 + Retry-After,
all of a request or none), failures reach only their batch, close() finishes what it admitted."""
from __future__ import annotations

import asyncio
import time

import pytest

from cnnkit.serve.batching import MicroBatcher
from cnnkit.serve.limits import Rejected


def _recorder(delay: float = 0.0, fail_on: object = None):
    sizes: list[int] = []

    def run(items):
        sizes.append(len(items))
        if fail_on in items:
            raise RuntimeError("boom")
        time.sleep(delay)
        return [i * 10 for i in items]

    return run, sizes


def test_concurrent_images_share_batches_up_to_max_batch():
    async def main():
        run, sizes = _recorder()
        b = MicroBatcher(run, max_batch=4, max_wait_ms=50, max_queue=100)
        b.start()
        results = await asyncio.gather(*b.submit(list(range(10))))
        await b.close()
        return results, sizes

    results, sizes = asyncio.run(main())
    assert results == [i * 10 for i in range(10)]
    assert sizes == [4, 4, 2]


def test_batch_of_one_and_the_wait_bound():
    async def main():
        run, sizes = _recorder()
        b = MicroBatcher(run, max_batch=1, max_wait_ms=1000, max_queue=100)
        b.start()
        await asyncio.gather(*b.submit([1, 2, 3]))
        lone = MicroBatcher(run, max_batch=8, max_wait_ms=20, max_queue=10)
        lone.start()
        start = time.perf_counter()
        await asyncio.gather(*lone.submit([7]))  # nobody else comes: runs after ~max_wait, not later
        waited = time.perf_counter() - start
        await b.close()
        await lone.close()
        return sizes, waited

    sizes, waited = asyncio.run(main())
    assert sizes == [1, 1, 1, 1]
    assert 0.015 <= waited < 0.5


def test_full_queue_refuses_whole_requests_with_retry_after():
    async def main():
        run, sizes = _recorder(delay=0.2)
        b = MicroBatcher(run, max_batch=2, max_wait_ms=0, max_queue=3)
        b.start()
        first = b.submit([1, 2, 3])
        with pytest.raises(Rejected) as full:
            b.submit([4])
        await asyncio.sleep(0.05)  # the collector took a batch of 2: one image still queued
        assert b.depth == 1
        with pytest.raises(Rejected):
            b.submit([5, 6, 7])  # needs 3 places, 2 are free: nothing of it is admitted
        assert b.depth == 1
        second = b.submit([8, 9])
        done = await asyncio.gather(*first, *second)
        await b.close()
        return full.value, done

    err, done = asyncio.run(main())
    assert err.status == 503 and err.headers["Retry-After"] == "1"
    assert done == [10, 20, 30, 80, 90]


def test_a_failing_batch_fails_only_its_requests():
    async def main():
        run, _ = _recorder(fail_on=2)
        b = MicroBatcher(run, max_batch=8, max_wait_ms=0, max_queue=10)
        b.start()
        bad = await asyncio.gather(*b.submit([2]), return_exceptions=True)
        good = await asyncio.gather(*b.submit([3]))
        await b.close()
        return bad, good

    bad, good = asyncio.run(main())
    assert isinstance(bad[0], RuntimeError) and good == [30]


def test_close_finishes_admitted_work_then_refuses():
    async def main():
        run, sizes = _recorder(delay=0.05)
        b = MicroBatcher(run, max_batch=2, max_wait_ms=0, max_queue=10)
        b.start()
        futures = b.submit([1, 2, 3, 4, 5])
        await b.close()
        with pytest.raises(Rejected) as after:
            b.submit([6])
        return [f.result() for f in futures], after.value.status

    done, status = asyncio.run(main())
    assert done == [10, 20, 30, 40, 50] and status == 503


def test_items_cancelled_while_queued_are_not_run():
    async def main():
        run, sizes = _recorder(delay=0.1)
        b = MicroBatcher(run, max_batch=1, max_wait_ms=0, max_queue=10)
        b.start()
        first, second = b.submit([1, 2])
        await asyncio.sleep(0.02)
        second.cancel()  # its request timed out
        await first
        await b.close()
        return sizes

    assert asyncio.run(main()) == [1]
