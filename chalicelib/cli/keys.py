"""``sluice keys create|list|update|delete``: operator keys (``ops-``) from a shell.

The same use cases and schemas as ``/admin/keys``, talking to the stage's tables directly with
the caller's AWS credentials. Those credentials reach every table anyway, so the CLI acts with
every scope, like the admin key. A new key is printed once, by ``create``; nothing else prints
more than its preview.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import click

from chalicelib.cli import as_cli_errors
from chalicelib.core.scopes import ALL_SCOPES, SCOPES

MAX_PAGES = 100


def _use_cases() -> Any:
    from chalicelib.services import operator_keys
    from chalicelib.store import configure_store

    configure_store()
    return operator_keys


def _body(schema_name: str, fields: dict[str, Any]) -> Any:
    """Options validated by the API's own schema; a refused field is named as its option."""
    from chalicelib.services import schemas

    given = {name: value for name, value in fields.items() if value is not None}
    with as_cli_errors():
        return schemas.parse(getattr(schemas, schema_name), json.dumps(given))


def _now() -> int:
    return int(time.time())


COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("id", lambda k: k["id"]),
    ("name", lambda k: k["name"]),
    ("key", lambda k: k.get("key") or k["key_preview"]),
    ("scopes", lambda k: ",".join(k["scopes"])),
    ("status", lambda k: k["status"]),
    ("expires", lambda k: k["expires_at"] or "never"),
    ("last used", lambda k: k["last_used_at"] or "never"),
]


def _show(value: Any, rows: list[dict[str, Any]], as_json: bool) -> None:
    from chalicelib.cli.main import table

    if as_json:
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
    else:
        click.echo(table(rows, COLUMNS) if rows else "(none)")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
scope_option = click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(sorted(SCOPES)),
    help="A scope the key holds; repeatable.",
)


@click.group("keys")
def keys() -> None:
    """Operator keys (ops-): admin access limited to some scopes, e.g. a cron that runs resets."""


@keys.command("create")
@click.argument("name")
@scope_option
@click.option("--expires-in-days", type=int, default=None)
@click.option("--expires-at", default=None, help="ISO-8601 with offset, e.g. 2027-01-31T00:00:00Z.")
@json_option
def create(
    name: str,
    scopes: tuple[str, ...],
    expires_in_days: int | None,
    expires_at: str | None,
    as_json: bool,
) -> None:
    """Create operator key NAME holding the given --scope values (the key is shown once)."""
    use_cases = _use_cases()
    body = _body(
        "CreateOperatorKey",
        {
            "name": name,
            "scopes": list(scopes),
            "expires_in_days": expires_in_days,
            "expires_at": expires_at,
        },
    )
    created = use_cases.create_key(body, ALL_SCOPES, _now())
    _show(created, [created], as_json)
    if not as_json:
        click.echo("Store the key now: it is shown only once.")


@keys.command("list")
@json_option
def list_keys(as_json: bool) -> None:
    """Every operator key (previews only, never the keys)."""
    use_cases = _use_cases()
    now = _now()
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        page = use_cases.list_keys(100, cursor, now)
        rows += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    _show({"data": rows}, rows, as_json)


@keys.command("update")
@click.argument("key_id")
@click.option("--name", default=None)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(sorted(SCOPES)),
    help="Replace the key's scopes with these; repeatable.",
)
@click.option("--status", type=click.Choice(["enabled", "disabled"]), default=None)
@json_option
def update(
    key_id: str, name: str | None, scopes: tuple[str, ...], status: str | None, as_json: bool
) -> None:
    """Rename, re-scope, disable or enable KEY_ID (in force on its next request)."""
    use_cases = _use_cases()
    body = _body(
        "PatchOperatorKey", {"name": name, "scopes": list(scopes) or None, "status": status}
    )
    updated = use_cases.patch_key(key_id, body, ALL_SCOPES, _now())
    _show(updated, [updated], as_json)


@keys.command("delete")
@click.argument("key_id")
@json_option
def delete(key_id: str, as_json: bool) -> None:
    """Delete KEY_ID for good: its next request is refused."""
    _use_cases().delete_key(key_id, ALL_SCOPES)
    if as_json:
        click.echo(json.dumps({"id": key_id, "deleted": True}))
    else:
        click.echo(f"Deleted {key_id}.")
