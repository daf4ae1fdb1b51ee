"""Structured JSON logs and CloudWatch Embedded Metric Format, written to stdout.

Lambda ships stdout to CloudWatch Logs, which extracts EMF metrics from the log line itself, so a
metric costs no API call. This is the small subset of what aws-lambda-powertools' Logger and
Metrics do that Sluice needs, without their import cost on every cold start.

Callers pass ids, names, counts and statuses, never keys: nothing here can print a secret
because nothing secret is handed to it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

NAMESPACE = "Sluice"
METRICS = (
    "RelayedCalls",
    "UpstreamFailures",
    "QuotaRejections",
    "RateLimitRejections",
    "Refunds",
    "SweeperRefunds",
    "LedgerDrift",
)


LEVELS = ("INFO", "WARNING", "ERROR")
# Where log lines go instead of stdout, and the lowest level kept (see ``diverted``).
_diversions: list[tuple[TextIO, int]] = []


@contextmanager
def diverted(stream: TextIO, lowest: str) -> Iterator[None]:
    """Inside, log lines below ``lowest`` are dropped and the others go to ``stream``.

    For the CLI, whose stdout is the command's answer. Metrics are not diverted.
    """
    _diversions.append((stream, LEVELS.index(lowest)))
    try:
        yield
    finally:
        _diversions.pop()


def log(
    event: str, *, level: str = "INFO", error: BaseException | None = None, **fields: Any
) -> None:
    """One JSON line: ``level``, ``event``, ``timestamp`` (epoch ms), then ``fields``.

    With ``error``, also its type and traceback text (``error_type``, ``traceback``) -- the code
    path, not the request: callers must not put headers or bodies in an exception they log.
    """
    assert level in LEVELS, f"unknown level {level}"
    stream = sys.stdout
    if _diversions:
        stream, lowest = _diversions[-1]
        if LEVELS.index(level) < lowest:
            return
    line = {"level": level, "event": event, "timestamp": int(time.time() * 1000), **fields}
    if error is not None:
        line["error_type"] = type(error).__name__
        import traceback  # only for the rare unhandled error: its import is a cold-start cost

        line["traceback"] = "".join(traceback.format_exception(error))
    stream.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")


def metric(name: str, value: float = 1, **dimensions: str) -> None:
    """One EMF record: the metric, its dimensions, and the value."""
    assert name in METRICS, f"undeclared metric {name}"
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [sorted(dimensions)] if dimensions else [[]],
                    "Metrics": [{"Name": name, "Unit": "Count"}],
                }
            ],
        },
        name: value,
        **dimensions,
    }
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
