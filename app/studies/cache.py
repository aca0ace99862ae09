"""Results computed once per key and shared: the first caller computes; callers that arrive
meanwhile wait for its result instead of computing it again. A failure is not kept (the next
caller tries again), and past `size` keys the least recently used is dropped."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Generic, TypeVar

V = TypeVar("V")


class SharedResults(Generic[V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._futures: OrderedDict[Hashable, Future[V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        with self._lock:
            future = self._futures.get(key)
            owner = future is None
            if future is None:
                future = self._futures[key] = Future()
                while len(self._futures) > self.size:
                    self._futures.popitem(last=False)
            else:
                self._futures.move_to_end(key)
        if owner:
            try:
                future.set_result(compute())
            except BaseException as e:
                with self._lock:
                    self._futures.pop(key, None)
                future.set_exception(e)
        return future.result()

    def clear(self) -> None:
        with self._lock:
            self._futures.clear()
