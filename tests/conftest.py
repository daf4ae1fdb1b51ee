"""Shared fixtures: settings, moto tables, DynamoDB Local, the chalice test client, an API helper.

Backends:
- ``tables``: moto in-process (unit and functional tests; single-threaded only).
- ``ddb_local``: AWS's DynamoDB Local, one JVM per test session, a fresh table prefix per test
  (anything concurrent runs here: moto is not thread-safe).
- ``backend``: parametrized over both, for the store's own suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from support import ADMIN_KEY, is_relay_path

from devtools.chalice_local import patch as patch_chalice_local

# Test clients route like API Gateway (greedy /{proxy+}), as `make run` does.
patch_chalice_local()

# Tests never reach AWS: dummy credentials, and nothing but 127.0.0.1 endpoints.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "SLUICE_ADMIN_KEY": ADMIN_KEY,
    }
)
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SLUICE_DYNAMODB_ENDPOINT"):
    os.environ.pop(_name, None)


def _share_botocore_loader() -> None:
    """Every test binds the models to a fresh botocore client (a new table prefix, a new
    mock), and each fresh session parsed DynamoDB's service model again: about 0.15 s a
    test. Sessions still resolve their credentials each (stacks bootstrap with others)."""
    import botocore.loaders
    import botocore.session
    import pynamodb.connection.base

    loader = botocore.loaders.create_loader()

    def session() -> botocore.session.Session:
        made = botocore.session.get_session()
        made.register_component("data_loader", loader)
        return made

    pynamodb.connection.base.get_session = session  # type: ignore[attr-defined]


_share_botocore_loader()

# The longest files, longest first. `make test` runs pytest-xdist with --dist loadfile, which
# hands whole files to the workers in collection order: a long file collected last would run
# alone at the end while the other worker idles. Within a file the order is unchanged.
LONGEST_FILES = (
    "tests/browser/test_console_pages.py",
    "tests/functional/test_make_run.py",
    "tests/test_schemathesis.py",
    "tests/gateway/test_relay_concurrency.py",
    "tests/browser/test_console_tokens.py",
    "tests/infra/test_packaged_template.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FILES)}
    root = config.rootpath
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))


def _apply_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    from chalicelib.core.settings import get_settings, reset_settings
    from chalicelib.store import configure_store

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    settings = get_settings()
    configure_store(settings)
    return settings


def _fresh_prefix() -> str:
    """A table prefix of its own, so no two tests (or workers) share a table."""
    return "t" + secrets.token_hex(4)


# moto in-process intercepts botocore only: the store's lean client (store/wire.py) would reach
# for AWS itself. On DynamoDB Local (the ``ddb_local`` fixture, every local stack) it is on.
ON_MOTO = {"SLUICE_DYNAMODB_CLIENT": "botocore"}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    return _apply_settings(monkeypatch, SLUICE_TABLE_PREFIX=_fresh_prefix(), **ON_MOTO)


@pytest.fixture
def tables(settings: Any) -> Iterator[Any]:
    """Every table, created from the models, on moto in-process."""
    with _moto_tables(settings):
        yield settings


@contextlib.contextmanager
def _moto_tables(settings: Any) -> Iterator[None]:
    from moto import mock_aws

    from chalicelib.store import configure_store, models
    from chalicelib.store.common import connection

    with mock_aws():
        configure_store(settings)
        models.configure(settings)  # fresh botocore clients inside the mock
        _create_moto_tables(settings)
        assert connection().client  # made now, not by two threads at once in the first call
        yield


# Suffix -> the empty table moto made for it, once per process (see _create_moto_tables).
_EMPTY_MOTO_TABLES: dict[str, Any] = {}


def _create_moto_tables(settings: Any) -> None:
    """What ``models.create_tables()`` makes, at a fraction of its cost on moto.

    Made through the API once per process, then copied under the test's prefix: moto's cost
    per call (about 30 calls with the existence checks and waits) made creating the tables
    most of a typical test's setup. Only the name and the ARN carry the prefix.
    """
    import copy

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from chalicelib.store import models

    prefix = settings.table_prefix
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][settings.region]
    if not _EMPTY_MOTO_TABLES:
        made = models.create_tables()
        assert sorted(made) == sorted(backend.tables), (made, list(backend.tables))
        for name, table in backend.tables.items():
            _EMPTY_MOTO_TABLES[name.removeprefix(prefix)] = copy.deepcopy(table)
        return
    for suffix, empty in _EMPTY_MOTO_TABLES.items():
        table = copy.deepcopy(empty)
        table.name = prefix + suffix
        table.table_arn = table._generate_arn(table.name)
        backend.tables[table.name] = table


@pytest.fixture(scope="session")
def ddb_local_server() -> Iterator[Any]:
    from devtools.ddblocal import start_local_dynamodb

    server = start_local_dynamodb()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ddb_local(ddb_local_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Fresh tables on DynamoDB Local under a per-test prefix."""
    from chalicelib.store import models

    settings = _apply_settings(
        monkeypatch,
        SLUICE_TABLE_PREFIX=_fresh_prefix(),
        SLUICE_DYNAMODB_ENDPOINT=ddb_local_server.endpoint,
        SLUICE_DYNAMODB_CLIENT="lean",
    )
    models.create_tables()
    try:
        yield settings
    finally:
        models.delete_tables()


@pytest.fixture(params=["moto", "ddb_local"])
def backend(request: pytest.FixtureRequest) -> Any:
    """The store suite runs once on each backend."""
    if request.param == "ddb_local":
        request.applymarker(pytest.mark.ddb_local)
    return request.getfixturevalue("tables" if request.param == "moto" else "ddb_local")


class Api:
    """A thin JSON client over chalice's test client, with the admin key at hand."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        key: str | None = None,
        body: Any = None,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        payload = raw if raw is not None else (None if body is None else json.dumps(body))
        response = getattr(self.client.http, method.lower())(path, headers=sent, body=payload)
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
        return response.status_code, data

    def admin(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return self.call(method, path, key=ADMIN_KEY, body=body, **kw)

    def new_account(self, name: str = "acme", **fields: Any) -> dict[str, Any]:
        status, data = self.admin("POST", "/admin/accounts", {"name": name, **fields})
        assert status == 201, data
        return data


class RelayResponse:
    """A relay answer shaped like chalice's test ``HTTPResponse``."""

    def __init__(self, body: bytes, headers: Any, status_code: int) -> None:
        self.body = body
        self.headers = headers
        self.status_code = status_code

    @property
    def json_body(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class RoutedHttp:
    """chalice's test HTTP client, with ``/v1/*`` served by the relay's ASGI app, as deployed."""

    def __init__(self, chalice_http: Any, relay: Any) -> None:
        self.chalice_http = chalice_http
        self.relay = relay

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = b"",
    ) -> Any:
        if not is_relay_path(path):
            return self.chalice_http.request(method, path, headers=headers, body=body or b"")
        content = body.encode() if isinstance(body, str) else (body or b"")
        answer = self.relay.request(method.upper(), path, headers=headers, content=content)
        return RelayResponse(answer.content, answer.headers, answer.status_code)

    def __getattr__(self, name: str) -> Any:
        if name in {"get", "post", "put", "patch", "delete", "head", "options"}:
            return lambda path, **kw: self.request(name, path, **kw)
        return getattr(self.chalice_http, name)


class RoutedClient:
    """chalice's test client whose ``http`` routes like API Gateway: /v1/* to the relay."""

    def __init__(self, chalice_client: Any, relay: Any) -> None:
        self.chalice_client = chalice_client
        self.http = RoutedHttp(chalice_client.http, relay)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chalice_client, name)


@pytest.fixture
def relay_client(tables: Any) -> Iterator[Any]:
    """Starlette's test client over the relay's ASGI app, seen from 127.0.0.1."""
    with _relay_client() as test_client:
        yield test_client


@contextlib.contextmanager
def _relay_client() -> Iterator[Any]:
    from starlette.testclient import TestClient

    from chalicelib.relay.app import app as relay_app

    with TestClient(relay_app, client=("127.0.0.1", 50000)) as test_client:
        yield test_client


@pytest.fixture
def client(tables: Any, relay_client: Any) -> Iterator[Any]:
    with _routed_client(relay_client) as routed:
        yield routed


@contextlib.contextmanager
def _routed_client(relay_client: Any) -> Iterator[RoutedClient]:
    from chalice.test import Client

    from app import app

    with Client(app) as test_client:
        yield RoutedClient(test_client, relay_client)


@pytest.fixture
def api(client: Any) -> Api:
    return Api(client)


@pytest.fixture(scope="module")
def module_api() -> Iterator[Api]:
    """``api`` for a whole module, on tables of its own: for a module whose every test
    leaves the store as it found it and checks so (a shared setup instead of one per test)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        settings = _apply_settings(monkeypatch, SLUICE_TABLE_PREFIX=_fresh_prefix(), **ON_MOTO)
        with _moto_tables(settings), _relay_client() as relay, _routed_client(relay) as routed:
            yield Api(routed)
