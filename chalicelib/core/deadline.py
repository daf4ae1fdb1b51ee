"""One deadline per call (pure): set when the request arrives, passed down to every step.

The deadline is the relay's timeout from the call's arrival, less a margin to settle in
(``services.gateway.call_deadline``): every upstream attempt fits before it, so the settle always
has its margin to land before the function's time is up. A buffered call whose deadline has
passed by the time its answer is in is refunded, not charged: the client may no longer get it.
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
