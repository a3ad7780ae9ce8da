"""Sending planned requests concurrently, in plan order, releasing each when its primer is done.

The dispatcher keeps three sets: *blocked* requests wait for a request that must finish first
(their primer, so the prefix they share is in the provider's cache when they arrive); *ready*
requests are started lowest plan position first, as concurrency allows; *in flight* ones are
running. Plans arrive chunk by chunk (``add``), so a run streams through the queue with flat
memory. A stop request ends dispatching; what was never started is handed back for release.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Item(Generic[T]):
    """One request to send: its global position, the position it waits for, and the payload."""

    position: int
    wait_for: int | None
    payload: T


@dataclass
class _State(Generic[T]):
    ready: list[tuple[int, Item[T]]] = field(default_factory=list)
    blocked: dict[int, list[Item[T]]] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)


class Dispatcher(Generic[T]):
    """Runs ``send(payload)`` for every added item with at most ``concurrency`` in flight.

    ``send`` must not raise for ordinary failures (it records them); an exception escaping it
    is a bug and stops the run after in-flight work has finished.
    """

    def __init__(self, send: Callable[[T], Awaitable[None]], *, concurrency: int) -> None:
        self._send = send
        self._slots = asyncio.Semaphore(concurrency)
        self._state: _State[T] = _State()
        self._wake = asyncio.Event()
        self._closed = False
        self._stopping = False
        self._next_position = 0
        self._errors: list[BaseException] = []

    @property
    def pending(self) -> int:
        """Items added but not started yet (ready or blocked)."""
        return len(self._state.ready) + sum(len(v) for v in self._state.blocked.values())

    @property
    def in_flight(self) -> int:
        """Items being sent right now."""
        return len(self._state.in_flight)

    def add(self, payloads: Sequence[T], wait_for: Sequence[int | None]) -> None:
        """Queue a chunk; ``wait_for`` holds chunk-local indexes of earlier items (or None)."""
        base = self._next_position
        self._next_position += len(payloads)
        for index, (payload, dep) in enumerate(zip(payloads, wait_for, strict=True)):
            if dep is not None and dep >= index:
                raise ValueError(f"item {index} waits for a later item {dep}")
            item = Item(base + index, None if dep is None else base + dep, payload)
            if item.wait_for is None or item.wait_for in self._state.finished:
                heapq.heappush(self._state.ready, (item.position, item))
            else:
                self._state.blocked.setdefault(item.wait_for, []).append(item)
        self._wake.set()

    def close(self) -> None:
        """No more chunks will be added; ``run`` returns once everything has finished."""
        self._closed = True
        self._wake.set()

    def stop(self) -> None:
        """Start nothing new; ``run`` returns after in-flight items finish."""
        self._stopping = True
        self._wake.set()

    def take_unsent(self) -> list[T]:
        """Remove and return every item that was never started (after a stop)."""
        items = [item for _, item in self._state.ready]
        items += [item for group in self._state.blocked.values() for item in group]
        self._state.ready.clear()
        self._state.blocked.clear()
        return [item.payload for item in sorted(items, key=lambda i: i.position)]

    def _finish(self, position: int) -> None:
        self._state.finished.add(position)
        for item in self._state.blocked.pop(position, []):
            heapq.heappush(self._state.ready, (item.position, item))
        self._wake.set()

    def cancel_in_flight(self) -> int:
        """Cancel the items being sent (a stop's grace period is over); how many."""
        tasks = list(self._state.in_flight)
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def _run_one(self, item: Item[T]) -> None:
        try:
            await self._send(item.payload)
        except asyncio.CancelledError:
            pass  # cancelled by a stop: the payload's job was not recorded and is released
        except BaseException as exc:  # a bug in send: keep it, stop cleanly
            self._errors.append(exc)
            self._stopping = True
        finally:
            # Leave in_flight before waking the loop, or it could see itself still busy.
            task = asyncio.current_task()
            if task is not None:
                self._state.in_flight.discard(task)
            self._slots.release()
            self._finish(item.position)

    async def run(self) -> None:
        """Dispatch until closed and drained, or stopped; then wait for in-flight items."""
        state = self._state
        while True:
            if self._stopping:
                break
            if state.ready:
                await self._slots.acquire()
                if self._stopping:
                    self._slots.release()
                    break
                _, item = heapq.heappop(state.ready)
                task = asyncio.create_task(self._run_one(item))
                state.in_flight.add(task)
                continue
            if self._closed and not state.in_flight and not state.blocked:
                break
            if self._closed and not state.in_flight and state.blocked:
                # Everything left waits for items that will never run (e.g. added after a
                # failure elsewhere): release them rather than hang.
                for group in list(state.blocked.values()):
                    for item in group:
                        heapq.heappush(state.ready, (item.position, item))
                state.blocked.clear()
                continue
            self._wake.clear()
            await self._wake.wait()
        if state.in_flight:
            await asyncio.gather(*list(state.in_flight), return_exceptions=True)
        if self._errors:
            raise self._errors[0]
