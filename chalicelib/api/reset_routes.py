"""``POST /admin/resets/run``: the reset job on demand (the hourly schedule is in ``app.py``).

External schedulers (cron, CI, another cloud) call this route; it runs the same job as the
``reset_quotas`` schedule within a budget below API Gateway's 29 s, and the next call continues.
"""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from chalicelib.api import auth, web
from chalicelib.services import resets as jobs

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
