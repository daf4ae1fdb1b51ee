"""Secrets kept in SSM Parameter Store (SecureString) or Secrets Manager, read once per container.

Locally the admin key comes straight from the environment. In AWS the environment holds only the
*name* of the parameter or secret; the value is fetched on first use and cached for the life of
the container, so a request pays for it at most once.

SSM parameters (channel keys, which the relay reads on a container's first call) go over the
store's lean client where the environment decides everything, as in Lambda (``common.py``), and
under the same setting as DynamoDB's calls: importing boto3 for one read would double the cold
start the relay avoids by never loading botocore. Elsewhere, boto3 reads them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from chalicelib.core.settings import Settings
from chalicelib.store import common, wire


@lru_cache(maxsize=32)
def _ssm_parameter(name: str, region: str, lean: bool) -> str:
    client = _lean_ssm(region) if lean else None
    if client is not None:
        answer = client.call("GetParameter", {"Name": name, "WithDecryption": True})
        return str(answer["Parameter"]["Value"])
    import boto3  # imported lazily: most containers never need it

    boto: Any = boto3.client("ssm", region_name=region)
    return str(boto.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])


@lru_cache(maxsize=4)
def _lean_ssm(region: str) -> wire.Wire | None:
    return common.from_environment(wire.SSM, region)


@lru_cache(maxsize=8)
def _secrets_manager(secret_id: str, region: str) -> str:
    import boto3

    client: Any = boto3.client("secretsmanager", region_name=region)
    return str(client.get_secret_value(SecretId=secret_id)["SecretString"])


def admin_key(settings: Settings) -> str | None:
    if settings.admin_key:
        return settings.admin_key
    if settings.admin_key_ssm_parameter:
        return ssm_parameter(settings.admin_key_ssm_parameter, settings)
    if settings.admin_key_secret_id:
        return _secrets_manager(settings.admin_key_secret_id, settings.region)
    return None


def ssm_parameter(name: str, settings: Settings) -> str:
    return _ssm_parameter(name, settings.region, settings.dynamodb_client != "botocore")


def forget() -> None:
    """Drop cached values (tests; a rotated secret is picked up by new containers anyway)."""
    _ssm_parameter.cache_clear()
    _lean_ssm.cache_clear()
    _secrets_manager.cache_clear()
