"""A bounded queue shared fairly by tenants: one FIFO per tenant, the tenants served round-robin.

Admission: `put(tenant, item)` refuses (raises `NoRoom`) when `capacity` items wait in all, or when
`tenant` alone already has `tenant_capacity` waiting. So a tenant that floods fills only its own share;
another tenant is still admitted.

Order (start-time fair queueing with unit cost per item): every item gets a turn number when it is put,
`max(current turn, the tenant's previous turn + 1)`, and items are taken by turn, ties by arrival. So
each tenant gets one item per turn: a tenant that starts waiting is served in the current turn, i.e.
before the next item of a tenant that was just served, and a tenant that keeps re-submitting one item
at a time cannot jump ahead of a backlogged one (its previous turn is remembered while it matters).

Consumer API (the model thread; a batching decoder takes several items per step):

    items = queue.take(max_items=1, timeout=None)

blocks until at least one item waits, `timeout` seconds pass or the queue is closed, and then returns
up to `max_items` items at once, in the order above: one item from each waiting tenant in turn, then a
second from those that have more, and so on (e.g. A has 3, B has 1: take(3) -> [A1, B1, A2]). It never
waits to fill `max_items`. An empty list means the timeout passed or the queue is closed (`closed`).

Producers: `put` never blocks. `remove(item)` withdraws an item that is still waiting (a cancelled
request) and frees its place at once; `close()` refuses further puts, wakes the consumer and returns the
items that were still waiting, for the caller to cancel. All methods are thread-safe.
"""

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")


class NoRoom(Exception):
    """`put` refused the item; `position` is where it would have been served (1 = next)."""

    def __init__(self, tenant: str, position: int, tenant_share_full: bool):
        limit = "its own share of the queue" if tenant_share_full else "the whole queue"
        super().__init__(f"tenant {tenant!r} was refused: {limit} is full")
        self.tenant = tenant
        self.position = position
        self.tenant_share_full = tenant_share_full


class QueueClosed(Exception):
    """`put` after `close()`: the consumer is shutting down."""


@dataclass(order=True)
class _Entry(Generic[Item]):
    turn: int
    arrival: int
    item: Item = field(compare=False)


class FairQueue(Generic[Item]):
    def __init__(self, capacity: int, tenant_capacity: int):
        if capacity < 1 or tenant_capacity < 1:
            raise ValueError("capacities must be at least 1")
        self.capacity = capacity
        self.tenant_capacity = min(tenant_capacity, capacity)
        self._waiting: dict[str, deque[_Entry[Item]]] = {}
        # Turn of each tenant's latest item, kept while it is not behind the current turn (older ones
        # no longer change a new item's turn, so they are forgotten: the map stays small).
        self._last_turn: dict[str, int] = {}
        self._turn = 0
        self._arrivals = itertools.count()
        self._size = 0
        self._closed = False
        self._changed = threading.Condition(threading.Lock())

    # --- producers ---

    def put(self, tenant: str, item: Item) -> None:
        """Queue `item` for `tenant`; NoRoom when its share or the whole queue is full."""
        with self._changed:
            if self._closed:
                raise QueueClosed("the queue is closed")
            turn = max(self._turn, self._last_turn.get(tenant, -1) + 1)
            entry = _Entry(turn, next(self._arrivals), item)
            mine = self._waiting.get(tenant, ())
            if len(mine) >= self.tenant_capacity or self._size >= self.capacity:
                position = 1 + sum(1 for waiting in self._entries() if waiting < entry)
                raise NoRoom(tenant, position, tenant_share_full=len(mine) >= self.tenant_capacity)
            self._waiting.setdefault(tenant, deque()).append(entry)
            self._last_turn[tenant] = turn
            self._size += 1
            self._changed.notify()

    def remove(self, item: Item) -> bool:
        """Withdraw `item` if it is still waiting; False when it was taken already (or never queued)."""
        with self._changed:
            for tenant, entries in self._waiting.items():
                for entry in entries:
                    if entry.item is item:
                        entries.remove(entry)
                        if not entries:
                            del self._waiting[tenant]
                        self._size -= 1
                        return True
            return False

    def close(self) -> list[Item]:
        """Refuse further puts, wake the consumer, and hand back what was still waiting (by turn)."""
        with self._changed:
            self._closed = True
            pending = [entry.item for entry in sorted(self._entries())]
            self._waiting.clear()
            self._size = 0
            self._changed.notify_all()
            return pending

    # --- the consumer ---

    def take(self, max_items: int = 1, timeout: float | None = None) -> list[Item]:
        """Up to `max_items` waiting items, fairly across tenants; [] on timeout or once closed."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._size == 0 and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._changed.wait(remaining)
            if self._closed:
                return []
            return [self._take_one() for _ in range(min(max_items, self._size))]

    def _take_one(self) -> Item:
        # Tenants are few (at most `capacity` have items waiting), so a scan of their heads is enough.
        tenant = min(self._waiting, key=lambda name: self._waiting[name][0])
        entries = self._waiting[tenant]
        entry = entries.popleft()
        if not entries:
            del self._waiting[tenant]
        self._size -= 1
        if entry.turn > self._turn:
            self._turn = entry.turn
            self._last_turn = {name: turn for name, turn in self._last_turn.items() if turn >= self._turn}
        return entry.item

    # --- observation ---

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return self._size

    def depth_of(self, tenant: str) -> int:
        with self._changed:
            return len(self._waiting.get(tenant, ()))

    def _entries(self):
        return itertools.chain.from_iterable(self._waiting.values())
