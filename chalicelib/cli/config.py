"""``sluice channels|models|groups``: the relay's configuration from a shell.

The same use cases and schemas as the admin API (``chalicelib.services.channel_admin``), talking
to the stage's tables directly, so a value the API would refuse is refused here with the same
message. Output is the API's JSON. A provider key is read from ``--api-key`` or, better (it stays
out of shell history), from the ``SLUICE_CHANNEL_API_KEY`` environment variable; never printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from chalicelib.cli import as_cli_errors, logs_to_stderr
from chalicelib.store import configure_store


@contextmanager
def _use_cases() -> Iterator[Any]:
    """The use cases with the store configured; our errors become a clean CLI error."""
    configure_store()
    from chalicelib.services import channel_admin as admin

    with as_cli_errors():
        yield admin


def _body(schema_name: str, fields: dict[str, Any]) -> Any:
    from chalicelib.services import schemas, schemas_config

    schema = getattr(schemas_config, schema_name, None) or getattr(schemas, schema_name)
    return schemas.parse(schema, json.dumps(fields))


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _now() -> int:
    return int(time.time())


def _model_map(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        client_model, sep, upstream_model = pair.partition("=")
        if not sep or not client_model or not upstream_model:
            raise click.BadParameter(
                f"'{pair}' is not CLIENT_MODEL=UPSTREAM_MODEL", param_hint="--map"
            )
        mapping[client_model] = upstream_model
    return mapping


# Channels ---------------------------------------------------------------------------------------
@click.group("channels")
def channels() -> None:
    """Upstream providers: where calls go, with which key, for which models and group."""
    logs_to_stderr()


@channels.command("create")
@click.option("--id", "channel_id", default=None, help="Channel id (generated if omitted).")
@click.option("--name", required=True)
@click.option("--base-url", required=True, help="OpenAI-compatible base URL, e.g. .../v1")
@click.option("--api-key", envvar="SLUICE_CHANNEL_API_KEY", default=None, show_envvar=True)
@click.option("--model", "models", multiple=True, required=True, help="Repeat for each model.")
@click.option("--map", "pairs", multiple=True, help="CLIENT_MODEL=UPSTREAM_MODEL; repeatable.")
@click.option("--group", default="default", show_default=True)
@click.option("--priority", type=int, default=0, show_default=True)
@click.option("--weight", type=int, default=1, show_default=True)
@click.option("--disabled", is_flag=True, help="Create it disabled.")
def create_channel(
    channel_id: str | None,
    name: str,
    base_url: str,
    api_key: str | None,
    models: tuple[str, ...],
    pairs: tuple[str, ...],
    group: str,
    priority: int,
    weight: int,
    disabled: bool,
) -> None:
    """Add a channel."""
    fields: dict[str, Any] = {
        "name": name,
        "base_url": base_url,
        "models": list(models),
        "model_map": _model_map(pairs),
        "group": group,
        "priority": priority,
        "weight": weight,
        "enabled": not disabled,
    }
    if channel_id is not None:
        fields["id"] = channel_id
    if api_key:
        fields["api_key"] = api_key
    with _use_cases() as admin:
        _echo(admin.create_channel(_body("CreateChannel", fields), _now()))


@channels.command("list")
def list_channels() -> None:
    """Every channel (provider keys are never shown)."""
    with _use_cases() as admin:
        _echo(admin.list_channels())


def _set_enabled(channel_id: str, enabled: bool) -> None:
    with _use_cases() as admin:
        _echo(admin.set_channel_enabled(channel_id, enabled, _now()))


@channels.command("enable")
@click.argument("channel_id")
def enable_channel(channel_id: str) -> None:
    """Send calls to this channel again."""
    _set_enabled(channel_id, True)


@channels.command("disable")
@click.argument("channel_id")
def disable_channel(channel_id: str) -> None:
    """Stop sending calls to this channel."""
    _set_enabled(channel_id, False)


@channels.command("delete")
@click.argument("channel_id")
@click.confirmation_option(prompt="Delete this channel and its stored key?")
def delete_channel(channel_id: str) -> None:
    """Remove a channel and its stored provider key."""
    with _use_cases() as admin:
        admin.delete_channel(channel_id)
    click.echo(f"Deleted channel {channel_id}.")


# Model prices -----------------------------------------------------------------------------------
@click.group("models")
def models() -> None:
    """Model prices in US$ (per million tokens, per request, image, character, minute, second)."""
    logs_to_stderr()


@models.command("set")
@click.argument("model")
@click.option("--input", "input_usd_per_mtok", default=None, help="US$ per million prompt tokens.")
@click.option(
    "--output", "output_usd_per_mtok", default=None, help="US$ per million output tokens."
)
@click.option(
    "--cached-input",
    "cached_input_usd_per_mtok",
    default=None,
    help="US$ per million cached prompt tokens (default: the input price).",
)
@click.option("--per-request", "usd_per_request", default=None, help="Flat US$ per request.")
@click.option("--per-image", "usd_per_image", default=None, help="US$ per image.")
@click.option(
    "--per-mchar",
    "usd_per_mchar",
    default=None,
    help="US$ per million characters of speech input.",
)
@click.option(
    "--per-minute", "usd_per_minute", default=None, help="US$ per minute of transcribed audio."
)
@click.option(
    "--per-second", "usd_per_second", default=None, help="US$ per second of generated video."
)
@click.option(
    "--max-audio-seconds",
    "max_audio_seconds",
    type=int,
    default=None,
    help="Longest audio a transcription is reserved for (default: SLUICE_MAX_AUDIO_SECONDS).",
)
def set_price(model: str, **fields: str | int | None) -> None:
    """Set MODEL's price: any combination of the options, at least one."""
    given = {name: value for name, value in fields.items() if value is not None}
    with _use_cases() as admin:
        _echo(admin.set_price(model, _body("SetPrice", given), _now()))


@models.command("list")
def list_prices() -> None:
    """Every model with a price."""
    with _use_cases() as admin:
        _echo(admin.list_prices())


@models.command("delete")
@click.argument("model")
def delete_price(model: str) -> None:
    """Remove MODEL's price (calls to it are then refused)."""
    with _use_cases() as admin:
        admin.delete_price(model)
    click.echo(f"Deleted the price of {model}.")


# Group ratios -----------------------------------------------------------------------------------
@click.group("groups")
def groups() -> None:
    """Price multipliers per key group (a group without one pays 1x)."""
    logs_to_stderr()


@groups.command("set")
@click.argument("group")
@click.argument("ratio")
def set_group_ratio(group: str, ratio: str) -> None:
    """Multiply prices for keys of GROUP by RATIO (a decimal such as 1.5)."""
    with _use_cases() as admin:
        _echo(admin.set_group_ratio(group, _body("SetGroupRatio", {"ratio": ratio}), _now()))


@groups.command("auto")
@click.argument("order", nargs=-1, required=True)
def set_auto_order(order: tuple[str, ...]) -> None:
    """Keys of the group 'auto' use, per call, the first group of ORDER that their account is
    granted and that serves the model (e.g. `sluice groups auto default vip`)."""
    with _use_cases() as admin:
        _echo(admin.set_auto_order(_body("SetAutoOrder", {"order": list(order)}), _now()))


@groups.command("list")
def list_groups() -> None:
    """Every group with a ratio."""
    with _use_cases() as admin:
        _echo(admin.list_group_ratios())
