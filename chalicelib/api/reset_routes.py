"""``POST /admin/resets/run`` and ``POST /admin/sweeper/run``: scheduled jobs on demand.

The schedules themselves are in ``app.py``. External schedulers (cron, CI, another cloud) call
these routes, with an operator key holding just ``resets:run`` or ``sweeper:run``; each runs the
same job as its schedule within a budget below API Gateway's 29 s, and the next call continues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalice import Blueprint

from chalicelib.api import auth, web
from chalicelib.services import resets as jobs

bp = Blueprint(__name__)
route = web.routes(bp)

# API Gateway gives up on a request after 29 s; stop well before, the next call continues.
HTTP_BUDGET_SECONDS = 20.0


def _budget() -> Callable[[], float]:
    started = time.monotonic()
    return lambda: HTTP_BUDGET_SECONDS - (time.monotonic() - started)


@route("/admin/resets/run", methods=["POST"])
def run_resets_now() -> dict[str, Any]:
    auth.operator(bp)
    run = jobs.run_resets(web.now(), deadline=_budget(), workers=jobs.SCHEDULE_WORKERS)
    return run.as_json()


@route("/admin/sweeper/run", methods=["POST"])
def run_sweeper_now() -> dict[str, Any]:
    from chalicelib.services import sweeper

    auth.operator(bp)
    run = sweeper.sweep(web.now(), _budget())
    return {
        "refunded": run.refunded,
        "settled": run.settled,
        "skipped": run.skipped,
        "complete": run.complete,
    }
