"""A map bounded by the total weight of its values, forgetting the oldest first."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class BoundedCache(Generic[Value]):
    """Safe to share between threads. Reads take no lock: a dict lookup is atomic in CPython,
    and a hit must cost next to nothing. Each value weighs 1 unless `weigh` says otherwise."""

    def __init__(self, capacity: int, weigh: Callable[[Value], int] = lambda _: 1) -> None:
        self.capacity = capacity
        self._weigh = weigh
        self._entries: dict[Hashable, Value] = {}
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Value | None:
        return self._entries.get(key)

    def put(self, key: Hashable, value: Value) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._weight -= self._weigh(old)
            self._entries[key] = value
            self._weight += self._weigh(value)
            while self._weight > self.capacity and len(self._entries) > 1:
                self._weight -= self._weigh(self._entries.pop(next(iter(self._entries))))

    def values(self) -> list[Value]:
        return list(self._entries.values())
