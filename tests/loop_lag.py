"""How late the event loop ran while a test's agents played: the tests' witness of a starved
machine (CI runs on 2 shared cores, possibly busy).

A player stall is a failure of ours only if the agent had the CPU to act in time. When the
process waits for a CPU for a second (or its loop is that far behind), every decision and every
transfer (pure-Python SCTP) is that late, and a segment due meanwhile stalls whatever the
scheduler decided: the same run on a quiet machine plays through. :class:`LoopLag` samples the
loop with a short timer, and the main thread's run-queue wait (``/proc/self/schedstat``: time
runnable but not running, the machine's load and not our work); a stall counts against the code
unless, in the ``window_s`` before it (or while it lasted), the loop ran ``min_lag_s`` late or
the thread waited that long for a CPU (:func:`unexplained_stalls`). On a quiet machine neither
happens and every stall fails the test. A uniquely named module (not conftest), imported by the
agent tests."""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass, field
from typing import Any


def run_queue_wait_s() -> float:
    """Seconds this process's main thread spent runnable but waiting for a CPU (Linux; 0.0 where
    ``/proc/self/schedstat`` is missing, so only the loop's lag counts)."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_run_and_wait_s() -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of this process's main thread so
    far (Linux ``/proc/self/schedstat``; (0.0, 0.0) where it is missing)."""
    try:
        with open("/proc/self/schedstat") as f:
            ran_ns, waited_ns = f.read().split()[:2]
        return int(ran_ns) / 1e9, int(waited_ns) / 1e9
    except (OSError, ValueError):
        return 0.0, 0.0


def cpu_denied_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """Between two :func:`cpu_run_and_wait_s` readings: the share of the time the main thread
    wanted a CPU that it waited for one. The machine's load, whatever our own demand: about 0
    on a quiet machine, 0.55 at load 8 on 2 cores, most of it at load 20."""
    ran = after[0] - before[0]
    waited = after[1] - before[1]
    return waited / (ran + waited) if ran + waited > 0 else 0.0


#: A stall is explained by starvation if the loop ran this late (seconds) shortly before it: the
#: tests' scheduler margin (deadline_margin_s, 0.5 s) is gone.
MIN_LAG_S = 0.5
#: How shortly: the live latency the tests' agents keep (4 one-second segments): a segment that
#: stalled was due for a fetch at most this long before.
WINDOW_S = 4.0


@dataclass
class LoopLag:
    """Samples the running loop every ``interval_s``: when a timer was due, how late it ran, and
    the main thread's run-queue wait so far."""

    interval_s: float = 0.05
    due: list[float] = field(default_factory=list)
    late_s: list[float] = field(default_factory=list)
    waited_s: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.due.append(due)
            self.late_s.append(max(0.0, loop.time() - due))
            self.waited_s.append(run_queue_wait_s())

    def worst_between(self, start: float, end: float) -> float:
        """The longest lag (seconds) of the timers due in [start, end]; 0.0 if none."""
        lo, hi = bisect.bisect_left(self.due, start), bisect.bisect_right(self.due, end)
        return max(self.late_s[lo:hi], default=0.0)

    def waited_between(self, start: float, end: float) -> float:
        """Seconds the main thread waited for a CPU between the samples around [start, end]."""
        if not self.due:
            return 0.0
        lo = max(0, bisect.bisect_left(self.due, start) - 1)
        hi = min(len(self.due) - 1, bisect.bisect_right(self.due, end))
        return self.waited_s[hi] - self.waited_s[lo]

    @property
    def worst(self) -> float:
        return max(self.late_s, default=0.0)

    def figures(self) -> str:
        n = len(self.late_s)
        over = sum(1 for s in self.late_s if s >= MIN_LAG_S)
        span_s = self.due[-1] - self.due[0] if n > 1 else 0.0
        waited = self.waited_s[-1] - self.waited_s[0] if n > 1 else 0.0
        return (
            f"loop lag: worst {self.worst:.2f} s, {over} of {n} samples >= {MIN_LAG_S} s; "
            f"waited for a CPU {waited:.1f} s of {span_s:.1f} s"
        )


def unexplained_stalls(
    agent: Any, lag: LoopLag, window_s: float = WINDOW_S, min_lag_s: float = MIN_LAG_S
) -> list[Any]:
    """The agent's player stalls that no starvation explains: in the ``window_s`` before the
    stall began (or while it lasted) the loop never ran ``min_lag_s`` late and the main thread
    never waited that long for a CPU in all."""
    player = agent.player
    if player is None:
        return []
    out = []
    for stall in player.stalls:
        start = stall.started_at - window_s
        end = stall.ended_at if stall.ended_at is not None else stall.started_at
        starved = max(lag.worst_between(start, end), lag.waited_between(start, end))
        if starved < min_lag_s:
            out.append(stall)
    return out


def assert_no_unexplained_stall(agent: Any, lag: LoopLag, summary: Any = None) -> None:
    """The no-stall rule on a shared machine: every stall of ``agent`` is explained by the loop
    running late around it (printed with the figures), or the test fails."""
    player = agent.player
    stalls = list(player.stalls) if player is not None else []
    if stalls:
        print(f"{agent.peer_id}: {len(stalls)} stalls {stalls}; {lag.figures()}")
    assert not unexplained_stalls(agent, lag), (stalls, lag.figures(), summary)
