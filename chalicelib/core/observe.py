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
from typing import Any

NAMESPACE = "Sluice"
METRICS = (
    "RelayedCalls",
    "UpstreamFailures",
    "QuotaRejections",
    "Refunds",
    "SweeperRefunds",
    "LedgerDrift",
    "Resets",
)


def log(event: str, **fields: Any) -> None:
    line = {"level": "INFO", "event": event, "timestamp": int(time.time() * 1000), **fields}
    sys.stdout.write(json.dumps(line, separators=(",", ":"), default=str) + "\n")


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
