"""A hand-driven wall clock, monotonic clock and sleep for refresher tests."""

from __future__ import annotations

import anyio
import anyio.lowlevel


async def settle(rounds: int = 30) -> None:
    """Let every ready task run until it waits again (a fixed number of scheduler rounds:
    deterministic, unlike polling for blocked tasks)."""
    for _ in range(rounds):
        await anyio.lowlevel.checkpoint()


class ManualClock:
    """``wall()`` and ``monotonic()`` move only when a test calls :meth:`advance`;
    ``sleep()`` returns when the monotonic clock has been advanced past its end."""

    def __init__(self, wall: float = 1_000_000.0) -> None:
        self.wall_now = wall
        self.mono_now = 0.0
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def wall(self) -> float:
        return self.wall_now

    def monotonic(self) -> float:
        return self.mono_now

    async def sleep(self, seconds: float) -> None:
        sleeper = (self.mono_now + seconds, anyio.Event())
        self._sleepers.append(sleeper)
        try:
            await sleeper[1].wait()
        finally:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)

    async def advance(self, seconds: float) -> None:
        """Move both clocks on, waking each sleeper at its own moment, in order."""
        target = self.mono_now + seconds
        while True:
            await settle()
            due = [s for s in self._sleepers if s[0] <= target]
            if not due:
                break
            deadline = min(s[0] for s in due)
            self.wall_now += deadline - self.mono_now
            self.mono_now = deadline
            for sleeper in [s for s in self._sleepers if s[0] <= deadline]:
                self._sleepers.remove(sleeper)
                sleeper[1].set()
        self.wall_now += target - self.mono_now
        self.mono_now = target
        await settle()
