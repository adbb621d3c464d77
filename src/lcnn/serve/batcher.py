"""An asyncio micro-batcher: requests that arrive together run through the model as one batch.

Each model has one :class:`Batcher`: a bounded queue and a task that takes the first waiting item, then
whatever else arrives within ``max_wait_ms`` of it (at most ``max_batch`` items), and runs the batch in the
model's own thread, off the event loop. While a batch runs, the next one fills, so under load the batches
grow without waiting. Results (or the batch's exception) go back to each item's future.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lcnn.serve.errors import ClientError

log = logging.getLogger("lcnn.serve")


class Batcher:
    """Batches for ``run(items) -> results`` (one result per item, in order).

    Args:
        run: the batch call (it runs in a thread of its own, one batch at a time).
        max_batch: most items in one batch (1: no batching).
        max_wait_ms: how long the first item of a batch waits for others.
        max_queue: most items waiting; one more is refused with 503.
        on_batch: called with the size of each batch and its seconds (metrics).
        name: for the thread and the logs.
    """

    def __init__(self, run: Callable[[list[Any]], list[Any]], max_batch: int = 16, max_wait_ms: float = 5.0,
                 max_queue: int = 256, on_batch: Callable[[int, float], None] | None = None,
                 name: str = "model") -> None:  # fmt: skip
        if max_batch < 1 or max_wait_ms < 0 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1, max_wait_ms at least 0")
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000
        self.on_batch, self.name = on_batch, name
        self.queue: asyncio.Queue[tuple[Any, asyncio.Future]] = asyncio.Queue(max_queue)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"lcnn-infer-{name}")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, item: Any) -> Any:
        """The result of ``item``, computed in some batch."""
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((item, future))
        except asyncio.QueueFull:
            raise ClientError(503, "busy", f"model {self.name} has {self.queue.maxsize} requests waiting; "
                                           "retry later", {"Retry-After": "1"}) from None  # fmt: skip
        return await future

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        batch = [await self.queue.get()]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_batch:
            if self.queue.empty():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                getter = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({getter}, timeout=remaining)
                if not done:  # nothing came in time (a cancelled get takes no item from the queue)
                    getter.cancel()
                    break
                batch.append(getter.result())
            else:
                batch.append(self.queue.get_nowait())
        return [(item, future) for item, future in batch if not future.done()]  # a caller that left: skipped

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            started = loop.time()
            try:
                results = await loop.run_in_executor(self.executor, self.run, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.name}: {len(results)} results for a batch of {len(batch)}")
            except Exception as err:  # the whole batch fails; each request answers 500 (the app logs it)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch), loop.time() - started)
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
