"""The configuration CLI and the ``make run`` demo bootstrap, on moto."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from click.testing import CliRunner

from chalicelib import upstream as relay
from chalicelib.cli import config as cli_config
from chalicelib.core.pricing import ModelPrice
from chalicelib.store import config as config_store
from devtools.demo_seed import DEMO_MODELS, register_demo
from devtools.mock_upstream import MockUpstream

PROVIDER_KEY = "sk-provider-" + "c" * 30


def run(command: Any, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(command, list(args), env=env, catch_exceptions=False)


def test_cli_creates_a_channel_with_the_key_from_the_environment_and_never_prints_it(
    tables: Any,
) -> None:
    # GIVEN the provider key in SLUICE_CHANNEL_API_KEY
    # WHEN a channel is created and listed from the shell
    created = run(
        cli_config.channels,
        "create",
        "--id", "main",
        "--name", "Main",
        "--base-url", "http://127.0.0.1:9000/v1",
        "--model", "gpt-4o-mini",
        "--model", "gpt-4o",
        "--map", "gpt-4o-mini=demo-chat",
        "--priority", "5",
        env={"SLUICE_CHANNEL_API_KEY": PROVIDER_KEY},
    )  # fmt: skip
    listed = run(cli_config.channels, "list")
    # THEN both succeed, show the channel, and never the key
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["model_map"] == {"gpt-4o-mini": "demo-chat"}
    assert [c["id"] for c in json.loads(listed.output)["data"]] == ["main"]
    assert PROVIDER_KEY not in created.output + listed.output
    # AND the store has the channel with its key
    stored = config_store.get_channel("main")
    assert stored is not None and config_store.api_key_for(stored) == PROVIDER_KEY


def test_cli_disables_enables_and_deletes_a_channel(tables: Any) -> None:
    # GIVEN a channel
    run(cli_config.channels, "create", "--id", "c1", "--name", "c1",
        "--base-url", "http://127.0.0.1:9/v1", "--model", "m")  # fmt: skip
    # WHEN it is disabled  THEN the store says so
    assert run(cli_config.channels, "disable", "c1").exit_code == 0
    assert config_store.get_channel("c1").enabled is False  # type: ignore[union-attr]
    # WHEN it is enabled again  THEN it is enabled
    assert run(cli_config.channels, "enable", "c1").exit_code == 0
    assert config_store.get_channel("c1").enabled is True  # type: ignore[union-attr]
    # WHEN it is deleted  THEN it is gone
    assert run(cli_config.channels, "delete", "c1", "--yes").exit_code == 0
    assert config_store.get_channel("c1") is None


def test_cli_refuses_what_the_api_refuses_with_the_same_message(tables: Any) -> None:
    # GIVEN a weight of zero  WHEN a channel is created from the shell
    result = CliRunner().invoke(
        cli_config.channels,
        ["create", "--name", "x", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
         "--weight", "0"],
    )  # fmt: skip
    # THEN it fails with the validation message, and nothing is stored
    assert result.exit_code != 0
    assert "weight" in result.output
    assert config_store.load_channels() == []


def test_cli_sets_and_lists_prices_and_group_ratios(tables: Any) -> None:
    # GIVEN nothing configured
    # WHEN prices and a ratio are set from the shell
    run(cli_config.models, "set", "gpt-4o-mini", "--input", "0.15", "--output", "0.60")
    run(cli_config.models, "set", "demo-flat", "--per-request", "0.002")
    run(cli_config.groups, "set", "vip", "1.5")
    # THEN they are listed and used by the relay's readers
    prices = json.loads(run(cli_config.models, "list").output)["data"]
    assert [p["model"] for p in prices] == ["demo-flat", "gpt-4o-mini"]
    assert config_store.price("gpt-4o-mini") == ModelPrice(Decimal("0.15"), Decimal("0.60"))
    groups = json.loads(run(cli_config.groups, "list").output)["data"]
    assert groups == [{"group": "vip", "ratio": "1.5"}]
    # AND the auto group's order is set and listed the same way
    assert run(cli_config.groups, "auto", "vip", "default").exit_code == 0
    assert json.loads(run(cli_config.groups, "list").output)["auto"] == {
        "order": ["vip", "default"]
    }
    assert config_store.auto_order() == ("vip", "default")


def test_demo_bootstrap_serves_every_demo_model_and_is_idempotent(
    tables: Any, upstreams: Callable[..., MockUpstream]
) -> None:
    # GIVEN the demo upstream requiring a key
    upstream = upstreams(api_key="demo-upstream-key")
    # WHEN the demo is registered twice (a restarted stack)
    register_demo(upstream.base_url, "demo-upstream-key")
    register_demo(upstream.base_url + "/", "demo-upstream-key")
    # THEN there is one demo channel, in the default group, serving the demo models
    channels = config_store.load_channels()
    assert [(c.id, c.group, c.revision) for c in channels] == [("demo", "default", 2)]
    assert relay.list_models("default") == sorted(DEMO_MODELS)
    # AND the documented prices are set
    assert config_store.price("gpt-4o") == ModelPrice(Decimal("2.50"), Decimal("10.00"))
    assert config_store.price("text-embedding-3-small") == ModelPrice(Decimal("0.02"), Decimal("0"))
    assert config_store.price("demo-flat") == ModelPrice(usd_per_request=Decimal("0.002"))
    # AND a chat call and an embedding call go through it
    chat = relay.forward(
        "chat",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        group="default",
        stream=False,
        client_wants_usage=False,
        request_id="req_demo",
        rng=random.Random(0),
    )
    embedding = relay.forward(
        "embeddings",
        {"model": "text-embedding-3-small", "input": "hi"},
        group="default",
        stream=False,
        client_wants_usage=False,
        request_id="req_demo2",
    )
    assert (chat.status, chat.channel, embedding.status) == (200, "demo", 200)
    assert upstream.requests == 2
