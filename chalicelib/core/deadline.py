"""One deadline per call (pure): set when the request arrives, passed down to every step.

Every upstream attempt and every DynamoDB write of a call happens before it: the forwarder gets
what is left minus the settle margin, so the settle always has its margin to land. A call whose
deadline has passed by the time its answer is in cannot deliver that answer any more (the
client's gateway has given up), so it is refunded, not charged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deadline:
    at: float  # on ``clock``'s scale
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def after(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, clock)

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.at - self.clock()

    def passed(self) -> bool:
        return self.left() <= 0
