"""``sluice resets run``: the scheduled quota reset, run by hand (same use case as the schedule).

Safe to run any time, any number of times: keys that are not due, or were already reset for
their current boundary, are left alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import click

from chalicelib.cli import logs_to_stderr
from chalicelib.services import resets as jobs
from chalicelib.store import configure_store


def _time_left(budget: float) -> Callable[[], float]:
    started = time.monotonic()
    return lambda: budget - (time.monotonic() - started)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@click.group("resets")
def resets() -> None:
    """Scheduled UTC quota resets (daily, weekly on Monday, monthly on the 1st)."""
    logs_to_stderr()


@resets.command("run")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Stop cleanly after about this long; run again to finish.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=32),
    default=None,
    help=f"Writes in flight at once (default {jobs.SCHEDULE_WORKERS}).",
)
def run(as_json: bool, max_seconds: float | None, workers: int | None) -> None:
    """Reset every key whose reset boundary has passed."""
    configure_store()
    deadline = None if max_seconds is None else _time_left(max_seconds)
    result = jobs.run_resets(
        int(time.time()), deadline=deadline, workers=workers or jobs.SCHEDULE_WORKERS
    )
    if as_json:
        click.echo(json.dumps(result.as_json()))
        return
    click.echo(
        f"Reset {_count(result.reset, 'key')} "
        f"({result.skipped} skipped, {_count(result.pages, 'page')})."
    )
    if not result.complete:
        click.echo("Stopped before the end: run it again to reset the rest.")
