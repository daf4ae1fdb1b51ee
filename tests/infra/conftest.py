"""Fixtures for the infra tests: the packaged prod stack, and the app running as prod on moto.

``settings`` here overrides the shared one for this folder only: the app gets the prod stage's
environment from .chalice/config.json (table prefix, SSM parameter names) instead of a random
prefix, so the table and parameter names it touches are the ones the prod IAM policy must name.
The admin key is then read from SSM (moto), as in AWS.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from infra_checks import stage_environment

# The key the shared ``api.admin`` helper sends (tests/conftest.py puts it in the environment).
ADMIN_KEY = os.environ["SLUICE_ADMIN_KEY"]


@pytest.fixture(scope="session")
def packaged_prod(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """``make package STAGE=prod`` into a temporary directory, once per test run.

    Under pytest-xdist each worker has its own session, and the files using this fixture may
    land on different workers: the first to get here packages (half a minute), under a lock
    in the run's shared temporary directory, and the others read what it wrote. The tests
    only read the package.
    """
    from devtools.package import package, zip_report

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's directory, above each worker's own
    out_dir, done = shared / "dist-prod", shared / "dist-prod.done"
    with (shared / "dist-prod.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            package("prod", out_dir)
            done.touch()
    print(zip_report(out_dir / "deployment.zip"))
    return out_dir, json.loads((out_dir / "sam.json").read_text())


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from chalicelib.core.settings import get_settings, reset_settings
    from chalicelib.store import configure_store, secrets

    for name, value in stage_environment("prod").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLUICE_ADMIN_KEY")
    monkeypatch.setenv("SLUICE_DYNAMODB_CLIENT", "botocore")  # on moto in-process
    reset_settings()
    secrets.forget()
    configure_store(get_settings())
    yield get_settings()
    secrets.forget()
    reset_settings()


@pytest.fixture
def prod_api(api: Any, settings: Any) -> Any:
    """The shared ``api`` helper on moto, with the admin key stored where prod reads it."""
    import boto3

    assert settings.admin_key is None and settings.admin_key_ssm_parameter
    boto3.client("ssm", region_name=settings.region).put_parameter(
        Name=settings.admin_key_ssm_parameter, Value=ADMIN_KEY, Type="SecureString"
    )
    return api
