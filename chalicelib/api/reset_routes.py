"""Quota resets at the edge: the hourly schedule and an admin route to run them now.

Registered with ``app.register_blueprint(routes_resets.bp)`` (no ``name_prefix``): chalice then
names the scheduled Lambda ``reset_quotas``, its handler
``chalicelib.api.reset_routes.reset_quotas``.

Every boundary (daily, Monday, the 1st) falls at 00:00 UTC, so the run at minute 0 of that hour
covers it; the schedule still fires every hour so that a run which failed or stopped early is
finished within the hour. Until a run reaches a due key, the request path resets it lazily.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Cron
from chalice.app import CloudWatchEvent

from chalicelib.api import auth, web
from chalicelib.services import resets as jobs
from chalicelib.store import configure_store

bp = Blueprint(__name__)
route = web.routes(bp)

# API Gateway gives up on a request after 29 s; stop well before, the next call continues.
HTTP_BUDGET_SECONDS = 20.0


@route("/admin/resets/run", methods=["POST"])
def run_resets_now() -> dict[str, Any]:
    auth.require_admin(web.header(bp, "authorization"))
    started = time.monotonic()
    run = jobs.run_resets(
        web.now(),
        deadline=lambda: HTTP_BUDGET_SECONDS - (time.monotonic() - started),
        workers=jobs.SCHEDULE_WORKERS,
    )
    return run.as_json()


@bp.schedule(Cron(0, "*", "*", "*", "?", "*"), name="reset_quotas")
def reset_quotas(event: CloudWatchEvent) -> dict[str, Any]:
    """Hourly at minute 0 UTC; stops cleanly before the Lambda's own time limit."""
    # Lambda imports this module directly (the handler is chalicelib.api.reset_routes.reset_quotas),
    # not app.py, so the store is pointed at the stage's tables here too.
    configure_store()
    run = jobs.run_resets(
        web.now(), deadline=_lambda_time_left(event.context), workers=jobs.SCHEDULE_WORKERS
    )
    return run.as_json()


def _lambda_time_left(context: Any) -> Callable[[], float] | None:
    """Seconds this invocation has left, from the Lambda context (None: no limit known)."""
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    return lambda: float(context.get_remaining_time_in_millis()) / 1000
