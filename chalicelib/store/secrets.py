"""Secrets kept in SSM Parameter Store (SecureString) or Secrets Manager, read once per container.

Locally the admin key comes straight from the environment. In AWS the environment holds only the
*name* of the parameter or secret; the value is fetched on first use and cached for the life of
the container, so a request pays for it at most once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from chalicelib.core.settings import Settings


@lru_cache(maxsize=32)
def _ssm_parameter(name: str, region: str) -> str:
    import boto3  # imported lazily: most containers never need it

    client: Any = boto3.client("ssm", region_name=region)
    return str(client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])


@lru_cache(maxsize=8)
def _secrets_manager(secret_id: str, region: str) -> str:
    import boto3

    client: Any = boto3.client("secretsmanager", region_name=region)
    return str(client.get_secret_value(SecretId=secret_id)["SecretString"])


def admin_key(settings: Settings) -> str | None:
    if settings.admin_key:
        return settings.admin_key
    if settings.admin_key_ssm_parameter:
        return _ssm_parameter(settings.admin_key_ssm_parameter, settings.region)
    if settings.admin_key_secret_id:
        return _secrets_manager(settings.admin_key_secret_id, settings.region)
    return None


def ssm_parameter(name: str, settings: Settings) -> str:
    return _ssm_parameter(name, settings.region)


def forget() -> None:
    """Drop cached values (tests; a rotated secret is picked up by new containers anyway)."""
    _ssm_parameter.cache_clear()
    _secrets_manager.cache_clear()
