"""Starting and stopping a local DynamoDB (DynamoDB Local, or moto's server as a fallback)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.ddblocal import (
    MOTO_WARNING,
    LocalDynamo,
    LocalDynamoError,
    find_jar,
    local_client,
    start_local_dynamodb,
)

pytestmark = pytest.mark.ddb_local

HAVE_DDB_LOCAL = shutil.which("java") is not None and find_jar() is not None
needs_ddb_local = pytest.mark.skipif(
    not HAVE_DDB_LOCAL, reason="java or the DynamoDB Local jar is not available"
)


@pytest.fixture(scope="module")
def dynamo() -> Iterator[LocalDynamo]:
    with start_local_dynamodb() as server:
        yield server


@pytest.fixture
def no_forced_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_DDB_BACKEND", raising=False)


def create_table(endpoint: str, name: str) -> None:
    local_client(endpoint).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_open(endpoint: str) -> bool:
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, int(port))) == 0


def test_started_server_listens_on_loopback(dynamo: LocalDynamo) -> None:
    # GIVEN a started local DynamoDB
    # WHEN its endpoint is inspected
    # THEN it is an HTTP endpoint on 127.0.0.1 that answers ListTables
    assert dynamo.endpoint.startswith("http://127.0.0.1:")
    assert "TableNames" in local_client(dynamo.endpoint).list_tables()


def test_table_can_be_created_and_listed(dynamo: LocalDynamo) -> None:
    # GIVEN a started local DynamoDB
    # WHEN a table is created
    create_table(dynamo.endpoint, "sluice-test-listed")

    # THEN it is listed
    assert "sluice-test-listed" in local_client(dynamo.endpoint).list_tables()["TableNames"]


@needs_ddb_local
def test_dynamodb_local_is_preferred_when_java_and_jar_exist(dynamo: LocalDynamo) -> None:
    # GIVEN java on PATH and the jar installed (and no backend forced)
    # WHEN the module fixture started a server
    # THEN it is the real DynamoDB Local
    if os.environ.get("SLUICE_DDB_BACKEND", "").lower() == "moto":
        pytest.skip("moto forced by the environment")
    assert dynamo.kind == "dynamodb-local"


def test_stop_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a server (the quick-starting kind) that was already stopped
    monkeypatch.setenv("SLUICE_DDB_BACKEND", "moto")
    server = start_local_dynamodb()
    server.stop()

    # WHEN it is stopped again
    server.stop()

    # THEN nothing fails and it stays dead
    assert not server.alive()


def test_context_manager_stops_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a server (the quick-starting kind) used as a context manager
    monkeypatch.setenv("SLUICE_DDB_BACKEND", "moto")
    with start_local_dynamodb() as server:
        pid = server.pid

    # WHEN the block ends
    # THEN the process is gone
    assert not process_exists(pid)


def test_moto_is_used_when_forced_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SLUICE_DDB_BACKEND=moto
    monkeypatch.setenv("SLUICE_DDB_BACKEND", "moto")

    # WHEN a server is started
    with start_local_dynamodb() as server:
        # THEN it is moto's server and it serves DynamoDB calls
        assert server.kind == "moto"
        create_table(server.endpoint, "sluice-test-moto")
        assert "sluice-test-moto" in local_client(server.endpoint).list_tables()["TableNames"]


@pytest.mark.usefixtures("no_forced_backend")
def test_missing_jar_falls_back_to_moto_with_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an install dir without the jar
    monkeypatch.setenv("SLUICE_DDB_LOCAL_DIR", str(tmp_path))

    # WHEN a server is started
    with start_local_dynamodb() as server:
        kind = server.kind

    # THEN moto is used and a one-line warning says results are not meaningful
    assert kind == "moto"
    warnings = [line for line in capsys.readouterr().err.splitlines() if MOTO_WARNING in line]
    assert len(warnings) == 1


@pytest.mark.usefixtures("no_forced_backend")
def test_missing_java_falls_back_to_moto(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a PATH without java
    monkeypatch.setenv("PATH", str(tmp_path))

    # WHEN a server is started
    with start_local_dynamodb() as server:
        kind = server.kind

    # THEN moto is used, with the warning
    assert kind == "moto"
    assert "Java not found" in capsys.readouterr().err


def test_start_on_a_busy_port_fails_with_log_tail() -> None:
    # GIVEN a port already bound by someone else
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]

        # WHEN a server is started on it
        with pytest.raises(LocalDynamoError) as info:
            start_local_dynamodb(port=port, timeout=30)

    # THEN the error explains itself with the server's own log
    assert "Log tail" in str(info.value)


@needs_ddb_local
@pytest.mark.slow
@pytest.mark.usefixtures("no_forced_backend")
def test_stop_leaves_no_process_and_a_restart_on_the_data_dir_keeps_its_tables(
    tmp_path: Path,
) -> None:
    # GIVEN a server with a data dir that got a table, then was stopped
    data_dir = str(tmp_path / "ddb-data")
    with start_local_dynamodb(data_dir=data_dir) as first:
        pid, endpoint = first.pid, first.endpoint
        assert process_exists(pid)
        create_table(first.endpoint, "sluice-test-persisted")

    # WHEN a new server starts on the same data dir
    # THEN neither the first process nor its group survived, and nothing listened any more
    assert not process_exists(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert not port_open(endpoint)
    with start_local_dynamodb(data_dir=data_dir) as second:
        names = local_client(second.endpoint).list_tables()["TableNames"]

    # AND the table is still there
    assert "sluice-test-persisted" in names
