"""The sequences of one context, shared by an engine's concurrent requests.

A request takes a sequence (slot) for its whole run and gives it back at the end. Up to
``n_parallel`` requests run at once (the native batch loop decodes them together); more wait in a
FIFO queue of at most ``n_queue``; beyond it ``QueueFullError`` is raised at once. A free slot
whose cache shares the longest prefix with the new prompt is preferred (a conversation keeps
its sequence, a common system prompt is reused); the native loop also copies a prefix that
another sequence holds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llamabind.errors import QueueFullError, StateError


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """How busy an engine is.

    Args:
        n_parallel: Requests it runs at once.
        n_active: Requests running now.
        n_waiting: Requests waiting for a sequence.
        n_queue: Requests that may wait at most.
    """

    n_parallel: int
    n_active: int
    n_waiting: int
    n_queue: int


class SlotLease:
    """One request's claim on a sequence slot: it waits in the queue, then holds a slot while its
    generation runs; ``cancel`` works from any thread at any time.

    ``SequenceSlots.acquire`` gives the lease a sequence id and ``release`` takes it back; the
    lease itself carries what cancelling needs (the native generation once started).
    """

    __slots__ = ("native", "cancelled", "_lock", "_on_cancel")

    def __init__(self) -> None:
        self.native: object | None = None  # the native Generator once started
        self.cancelled = False
        self._lock = threading.Lock()
        self._on_cancel: Callable[[], None] | None = None

    def attach(self, native: object) -> None:
        """The native generation of this request; cancelled at once if the request already was."""
        with self._lock:
            self.native = native
            cancelled = self.cancelled
        if cancelled:
            native.cancel()  # type: ignore[attr-defined]

    def cancel(self) -> None:
        """Stops the request: a waiting one leaves the queue, a running one ends "cancelled"."""
        with self._lock:
            self.cancelled = True
            native, on_cancel = self.native, self._on_cancel
        if native is not None:
            native.cancel()  # type: ignore[attr-defined]
        if on_cancel is not None:
            on_cancel()


class SequenceSlots:
    """The pool of sequence ids ``0..n_parallel-1`` of one context, with a FIFO wait queue.

    Args:
        n_parallel: Slots (sequences that generate at once).
        n_queue: Requests that may wait for a slot.
        prefix_lengths: For a prompt, how many of its first tokens each sequence's cache holds
            (indexed by sequence id; ``Context.prefix_lengths``), to pick the slot with the
            longest common prefix.
    """

    def __init__(
        self,
        n_parallel: int,
        n_queue: int,
        prefix_lengths: Callable[[Sequence[int]], Sequence[int]],
    ) -> None:
        self.n_parallel = n_parallel
        self.n_queue = n_queue
        self._prefix_lengths = prefix_lengths
        self._cond = threading.Condition()
        self._free: list[int] = list(range(n_parallel))  # least recently used first
        self._waiting: deque[SlotLease] = deque()
        self._running: dict[int, tuple[SlotLease, int]] = {}  # seq -> (lease, thread id)
        self._exclusive = False

    def info(self) -> QueueInfo:
        with self._cond:
            return QueueInfo(self.n_parallel, len(self._running), len(self._waiting), self.n_queue)

    @property
    def n_active(self) -> int:
        return len(self._running)

    def acquire(self, lease: SlotLease, prompt_tokens: Sequence[int]) -> int | None:
        """Waits for a slot (FIFO) and returns its sequence id; None if ``lease`` was cancelled.

        Raises:
            QueueFullError: every slot is busy and ``n_queue`` requests wait already.
            StateError: this thread already holds every slot (waiting would never end).
        """
        me = threading.get_ident()
        with self._cond:
            if not self._free or self._waiting or self._exclusive:
                if (
                    self._running
                    and all(t == me for _, t in self._running.values())
                    and not self._free
                ):
                    raise StateError(
                        "this thread already runs every generation this engine allows "
                        f"(n_parallel={self.n_parallel}): finish or close one first, or raise "
                        "ModelParams.n_parallel"
                    )
                if len(self._waiting) >= self.n_queue:
                    raise QueueFullError(
                        f"all {self.n_parallel} sequences are busy and {len(self._waiting)} requests "
                        "wait already; retry later or raise ModelParams.n_queue",
                        n_parallel=self.n_parallel,
                        n_queue=self.n_queue,
                    )
            self._waiting.append(lease)
            lease._on_cancel = self._wake
            try:
                while not lease.cancelled and (
                    self._waiting[0] is not lease or not self._free or self._exclusive
                ):
                    self._cond.wait()
            finally:
                self._waiting.remove(lease)
                lease._on_cancel = None
                self._cond.notify_all()
            if lease.cancelled:
                return None
            seq = self._pick(prompt_tokens)
            self._free.remove(seq)
            self._running[seq] = (lease, me)
            return seq

    def release(self, seq: int) -> None:
        """Gives a slot back (most recently used last, so it is reused last)."""
        with self._cond:
            if self._running.pop(seq, None) is not None:
                self._free.append(seq)
            self._cond.notify_all()

    def cancel_all(self) -> None:
        """Cancels every running and waiting request."""
        with self._cond:
            leases = [lease for lease, _ in self._running.values()] + list(self._waiting)
        for lease in leases:
            lease.cancel()

    def hold_all(self) -> None:
        """Takes the whole context for an operation on every sequence (state, cache reset).

        Raises:
            StateError: a request is running.
        """
        with self._cond:
            if self._running or self._exclusive:
                raise StateError(
                    "a generation is running on this engine: finish or cancel it first"
                )
            self._exclusive = True

    def release_all(self) -> None:
        with self._cond:
            self._exclusive = False
            self._cond.notify_all()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _pick(self, prompt_tokens: Sequence[int]) -> int:
        """The free slot whose cache shares the longest prefix with the prompt, else the LRU one."""
        if len(self._free) == 1:
            return self._free[0]
        lengths = self._prefix_lengths(prompt_tokens)
        best, best_len = self._free[0], 0
        for seq in self._free:
            if lengths[seq] > best_len:
                best, best_len = seq, lengths[seq]
        return best


RunHandle = SlotLease  # the earlier name of SlotLease, kept for code that imported it
