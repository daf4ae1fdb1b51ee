"""The ``make run`` bootstrap: one channel to the local demo upstream, and the demo prices.

Idempotent: running it again replaces the channel and the prices with the same values, so a
restarted stack (with or without ``--persist``) always starts from the documented state.
"""

from __future__ import annotations

import time
from decimal import Decimal

from chalicelib.core.channels import Channel
from chalicelib.core.pricing import ModelPrice
from chalicelib.store import config as config_store

DEMO_CHANNEL_ID = "demo"
# Images, audio and video (devtools.mock_media serves them), priced as OpenAI lists them.
MEDIA_PRICES = {
    "dall-e-3": ModelPrice(usd_per_image=Decimal("0.04")),
    # Billed per image and by tokens, as gpt-image-1 is.
    "gpt-image-1": ModelPrice(
        usd_per_image=Decimal("0.01"),
        input_usd_per_mtok=Decimal("5.00"),
        output_usd_per_mtok=Decimal("40.00"),
    ),
    "tts-1": ModelPrice(usd_per_mchar=Decimal("15.00")),
    "whisper-1": ModelPrice(usd_per_minute=Decimal("0.006")),
    "gpt-4o-transcribe": ModelPrice(
        input_usd_per_mtok=Decimal("6.00"), output_usd_per_mtok=Decimal("10.00")
    ),
    "sora-2": ModelPrice(usd_per_second=Decimal("0.10")),
}
DEMO_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "text-embedding-3-small",
    "demo-flat",
    "demo-slow",
    # The Responses API (cached input priced apart), legacy completions, moderations.
    *("gpt-4.1-mini", "gpt-3.5-turbo-instruct", "omni-moderation-latest"),
    *MEDIA_PRICES,
)
DEMO_PRICES = {
    "gpt-4o-mini": ModelPrice(
        input_usd_per_mtok=Decimal("0.15"), output_usd_per_mtok=Decimal("0.60")
    ),
    "gpt-4o": ModelPrice(input_usd_per_mtok=Decimal("2.50"), output_usd_per_mtok=Decimal("10.00")),
    "text-embedding-3-small": ModelPrice(
        input_usd_per_mtok=Decimal("0.02"), output_usd_per_mtok=Decimal("0")
    ),
    "demo-flat": ModelPrice(usd_per_request=Decimal("0.002")),
    # The demo upstream streams this one a word at a time (see devtools.mock_upstream).
    "demo-slow": ModelPrice(
        input_usd_per_mtok=Decimal("0.15"), output_usd_per_mtok=Decimal("0.60")
    ),
    "gpt-4.1-mini": ModelPrice(
        input_usd_per_mtok=Decimal("0.40"),
        cached_input_usd_per_mtok=Decimal("0.10"),
        output_usd_per_mtok=Decimal("1.60"),
    ),
    "gpt-3.5-turbo-instruct": ModelPrice(
        input_usd_per_mtok=Decimal("1.50"), output_usd_per_mtok=Decimal("2.00")
    ),
    "omni-moderation-latest": ModelPrice(usd_per_request=Decimal("0.0002")),
    **MEDIA_PRICES,
}


def register_demo(base_url: str, api_key: str | None) -> None:
    """Create or update the "demo" channel (group default) and seed the demo prices."""
    _register(DEMO_CHANNEL_ID, base_url, api_key, DEMO_MODELS)


def register_provider(base_url: str, api_key: str, models: tuple[str, ...] = ()) -> None:
    """``make run`` with UPSTREAM_BASE_URL/UPSTREAM_API_KEY: that provider as the only channel.

    It serves the priced OpenAI models (or ``models``); prices are the demo's list prices.
    """
    served = models or tuple(m for m in DEMO_MODELS if not m.startswith("demo-"))
    _register("upstream", base_url, api_key, served)


def _register(channel_id: str, base_url: str, api_key: str | None, models: tuple[str, ...]) -> None:
    now = int(time.time())
    channel = Channel(
        id=channel_id,
        name=channel_id,
        base_url=base_url.rstrip("/"),
        models=models,
        group="default",
        priority=0,
        weight=1,
        enabled=True,
    )
    config_store.put_channel(channel, api_key, now)
    for model, model_price in DEMO_PRICES.items():
        if model in models:
            config_store.set_price(model, model_price, now)
