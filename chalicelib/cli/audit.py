"""``sluice audit``: the audit trail from a shell, newest first (the same use case as GET /audit).

The CLI acts with the caller's AWS credentials, every power of the admin key, so what it changes
is recorded with the actor ``admin`` and a request id starting ``cli-`` (see ``cli.main``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from chalicelib.core import audit as audit_rules

MAX_PAGES = 100

COLUMNS: list[tuple[str, Any]] = [
    ("at", lambda r: r["at"]),
    ("actor", lambda r: r["actor"]),
    ("action", lambda r: r["action"]),
    ("target", lambda r: r["target_id"]),
    ("changes", lambda r: _changes(r["changes"])),
]


def _changes(changes: dict[str, Any]) -> str:
    return "; ".join(
        f"{name}: {json.dumps(change.get('old'))} -> {json.dumps(change.get('new'))}"
        for name, change in sorted(changes.items())
    )


@click.command("audit")
@click.option("--account", "account_id", default=None, help="Only this account's records.")
@click.option("--target-type", type=click.Choice(audit_rules.TARGET_TYPES), default=None)
@click.option("--target-id", default=None, help="Only this target's records (with --target-type).")
@click.option("--action", type=click.Choice(audit_rules.ACTIONS), default=None)
@click.option("--start", default=None, help="ISO-8601 or epoch seconds (default: all kept).")
@click.option("--end", default=None, help="ISO-8601 or epoch seconds (default: now).")
@click.option("--limit", type=click.IntRange(1, 100 * MAX_PAGES), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def audit(as_json: bool, limit: int, **given: str | None) -> None:
    """Who changed what: management actions, newest first."""
    from chalicelib.cli.main import table
    from chalicelib.services import audit as audit_log
    from chalicelib.store import configure_store

    configure_store()
    selected = audit_log.filters(**given, now=int(time.time()))
    rows: list[dict[str, Any]] = []
    cursor = None
    while len(rows) < limit:
        page = audit_log.list_records(selected, min(100, limit - len(rows)), cursor)
        rows += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    if as_json:
        click.echo(json.dumps({"data": rows, "next_cursor": cursor}, indent=2, ensure_ascii=False))
    else:
        click.echo(table(rows, COLUMNS) if rows else "(none)")
