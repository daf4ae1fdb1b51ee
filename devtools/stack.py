"""The whole local stack in one call: DynamoDB Local, a demo upstream, the relay and
``chalice local`` behind one port (``devtools.front``).

``make run``, the HTTP-level tests, the benchmarks and the browser tests all start the gateway
the same way, so they all exercise the same wiring::

    with start_stack() as stack:
        auth = {"Authorization": f"Bearer {stack.management_key}"}
        httpx.get(f"{stack.base_url}/account", headers=auth)

Every process started here runs in its own session, so a Ctrl-C in the terminal reaches only the
caller, which then stops them in order; ``stop()`` is idempotent and also registered with atexit.
The app gets dummy AWS credentials and a 127.0.0.1 endpoint, so nothing here can reach AWS.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from devtools.ddblocal import LOCAL_AWS, LocalDynamo, free_port, start_local_dynamodb
from devtools.mock_upstream import MockUpstream

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_ACCOUNT = "demo"
DEMO_BALANCE_USD = "10"
READY_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 5.0
UPSTREAM_KINDS = ("demo", "external", "none")
# Anything that could point the local app at a real AWS account or secret.
STRIPPED_ENV = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "SLUICE_ADMIN_KEY_SSM_PARAMETER",
    "SLUICE_ADMIN_KEY_SECRET_ID",
    "SLUICE_CHANNEL_SECRET_SSM_PREFIX",
)


class StackError(RuntimeError):
    """The local stack could not start."""


@dataclass
class Stack:
    """A running local stack. Keys are for local use only and never logged."""

    base_url: str
    admin_key: str = field(repr=False)
    account_id: str
    demo_key: str = field(repr=False)
    # Only known when the demo account was created by this start (see ``start_stack``).
    management_key: str | None = field(repr=False)
    env: dict[str, str] = field(repr=False)
    dynamo: LocalDynamo
    upstream: MockUpstream | None = None
    upstream_kind: str = "demo"
    upstream_base_url: str | None = None
    upstream_api_key: str | None = field(default=None, repr=False)
    persist_dir: str | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def settings(self) -> Any:
        from chalicelib.core.settings import Settings

        return Settings.from_env(self.env)

    @contextlib.contextmanager
    def using_store(self) -> Iterator[Any]:
        """Bind this process's store to the stack's tables (bootstrap hooks, test assertions)."""
        with _store_bound_to(self.env) as settings:
            yield settings

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the app, the upstream and DynamoDB (in that order); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self.process is not None:
            _stop_group(self.process)
        if self.upstream is not None:
            self.upstream.stop()
        self.dynamo.stop()
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def bootstrap_relay(stack: Stack) -> None:
    """Extension point: register ``stack.upstream_base_url`` as a channel and seed model prices.

    Called with the stack's tables created and the demo account in place, before the app starts;
    use ``with stack.using_store():`` to reach the tables. ``stack.upstream_kind`` says whether the
    upstream is the demo one (``stack.upstream``, keyed with ``stack.upstream_api_key``), an
    external provider, or none.
    """
    if stack.upstream_kind == "none" or not stack.upstream_base_url:
        return
    from devtools.demo_seed import register_demo, register_provider

    with stack.using_store():
        if stack.upstream_kind == "demo":
            register_demo(stack.upstream_base_url, stack.upstream_api_key)
        else:
            models = tuple(m for m in os.environ.get("UPSTREAM_MODELS", "").split(",") if m)
            register_provider(stack.upstream_base_url, stack.upstream_api_key or "", models)


def chalice_stage_environment(stage: str) -> dict[str, str]:
    """What ``.chalice/config.json`` sets for ``stage``; chalice local applies it over ours."""
    try:
        config = json.loads((REPO_ROOT / ".chalice" / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    stage_config = config.get("stages", {}).get(stage, {})
    return {
        **config.get("environment_variables", {}),
        **stage_config.get("environment_variables", {}),
    }


def app_environment(
    *, stage: str, endpoint: str, admin_key: str, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of the local app: local DynamoDB, dummy AWS credentials, the admin key.

    The table prefix is the one the stage's chalice config gives the app (chalice local sets
    it over ours), so the tables created here are the ones the app uses. ``SLUICE_ADMIN_KEY``
    wins over an SSM parameter name from that config.
    """
    env = dict(os.environ if base is None else base)
    for name in STRIPPED_ENV:
        env.pop(name, None)
    staged = chalice_stage_environment(stage)
    env.update(LOCAL_AWS)
    env.update(
        {
            "SLUICE_STAGE": stage,
            "SLUICE_TABLE_PREFIX": staged.get("SLUICE_TABLE_PREFIX") or f"sluice-{stage}",
            "SLUICE_DYNAMODB_ENDPOINT": endpoint,
            "SLUICE_ADMIN_KEY": admin_key,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextlib.contextmanager
def _store_bound_to(env: dict[str, str]) -> Iterator[Any]:
    """Run with ``env`` as this process's environment and the store on its tables, then undo.

    The whole stack environment is applied (not only the store's binding), so code that reads
    ``get_settings()`` or calls ``configure_store()`` itself inside the block sees the stack too.
    """
    import chalicelib.store as store
    from chalicelib.core.settings import Settings, reset_settings

    settings = Settings.from_env(env)
    previous_store = store._configured_for  # read-only peek, to hand the store back as it was
    names = set(env) | set(STRIPPED_ENV)
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in STRIPPED_ENV:
            os.environ.pop(name, None)
        os.environ.update(env)
        reset_settings()
        store.configure_store(settings)
        yield settings
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_settings()
        # Fresh connections next time: the ones made here carry the dummy credentials.
        store.models.configure(settings)
        if previous_store is not None:
            store.configure_store(previous_store)


def _find_account(name: str) -> dict[str, Any] | None:
    from chalicelib.services import management

    cursor = None
    for _ in range(1000):  # bounded: 100 per page
        page = management.list_accounts(management.MAX_LIST_LIMIT, cursor)
        for account in page["data"]:
            if account["name"] == name:
                return dict(account)
        cursor = page["next_cursor"]
        if not cursor:
            return None
    return None


def bootstrap_demo(now: int) -> tuple[str, str | None, str]:
    """(account id, management key, fresh sk- key) of the demo account; idempotent.

    Keys are stored only as hashes and cannot be shown again, so a reused (persisted) account
    gets a new management key and one new API key on each start.
    """
    from chalicelib.services import management, schemas

    existing = _find_account(DEMO_ACCOUNT)
    if existing is None:
        body = schemas.CreateAccount.model_validate(
            {"name": DEMO_ACCOUNT, "quota_usd": DEMO_BALANCE_USD}
        )
        created = management.create_account(body, now)
        return created["account"]["id"], created["management_key"], created["default_token"]["key"]
    started = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S")
    body_tokens = schemas.CreateTokens.model_validate({"name": f"demo {started}"})
    tokens = management.create_tokens(existing["id"], body_tokens, now)
    management_key = management.regenerate_management_key(existing["id"])["management_key"]
    return existing["id"], management_key, tokens["data"][0]["key"]


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
            break
        except subprocess.TimeoutExpired:
            continue
    # Anything the server left in its group goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(path: Path | None, max_bytes: int = 4000) -> str:
    if path is None or not path.exists():
        return "(output went to the terminal)"
    return path.read_bytes()[-max_bytes:].decode("utf-8", errors="replace").strip() or "(empty)"


def _wait_healthy(stack: Stack, timeout: float) -> None:
    """Poll GET /health until 200, the server dies, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    for _ in range(int(timeout / 0.1) + 1):
        if not stack.alive():
            raise StackError(
                f"the server exited with code {stack.process and stack.process.poll()}.\n"
                f"Output:\n{_tail(stack.log_path)}"
            )
        try:
            response = httpx.get(f"{stack.base_url}/health", timeout=2.0)
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    raise StackError(
        f"the server not healthy after {timeout:.0f}s ({last_error}).\n"
        f"Output:\n{_tail(stack.log_path)}"
    )


def _upstream(
    kind: str, base_url: str | None, api_key: str | None
) -> tuple[MockUpstream | None, str | None, str | None]:
    if kind == "demo":
        key = api_key or "demo-upstream-" + secrets.token_urlsafe(16)
        mock = MockUpstream(host="127.0.0.1", port=0, api_key=key).start()
        return mock, mock.base_url, key
    if kind == "external":
        url = base_url or os.environ.get("UPSTREAM_BASE_URL", "").strip()
        if not url:
            raise StackError("upstream='external' needs UPSTREAM_BASE_URL (or upstream_base_url).")
        return None, url, api_key or os.environ.get("UPSTREAM_API_KEY", "").strip() or None
    if kind == "none":
        return None, None, None
    raise StackError(f"upstream must be one of {', '.join(UPSTREAM_KINDS)}, not {kind!r}.")


def _refuse_if_busy(port: int) -> None:
    """Before anything starts: a server already on ``port`` (an earlier ``make run``) would
    answer the health check for this stack, which would print keys of its own database that
    the server really there refuses."""
    with socket.socket() as probe:
        # As uvicorn binds: only a listening socket, not one in TIME_WAIT, makes it busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(
                f"port {port} is in use (another Sluice, or another server): stop it, or "
                f"choose another port, e.g. make run PORT={port + 1}"
            ) from exc


def start_stack(
    port: int | None = None,
    persist_dir: str | None = None,
    admin_key: str | None = None,
    upstream: str = "demo",
    *,
    stage: str = "dev",
    upstream_base_url: str | None = None,
    upstream_api_key: str | None = None,
    server_output: IO[bytes] | int | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Stack:
    """Start everything, bootstrap the demo account, and wait until GET /health answers 200.

    ``persist_dir`` keeps DynamoDB's data between starts (the demo account is then reused).
    ``server_output`` is where the server (the front and chalice local) writes (default: a
    temporary log file, whose tail explains a failed start); pass ``sys.stdout.buffer`` to watch
    requests in a terminal.
    """
    admin_key = admin_key or "sluice-admin-" + secrets.token_urlsafe(24)
    if port is not None:
        _refuse_if_busy(port)
    dynamo = start_local_dynamodb(port=None, data_dir=persist_dir)
    started: list[Any] = [dynamo]
    log_file: IO[bytes] | None = None
    try:
        mock, base_url, upstream_key = _upstream(upstream, upstream_base_url, upstream_api_key)
        if mock is not None:
            started.append(mock)
        env = app_environment(stage=stage, endpoint=dynamo.endpoint, admin_key=admin_key)
        with _store_bound_to(env):
            from chalicelib.store import models

            models.create_tables()
            account_id, management_key, demo_key = bootstrap_demo(int(time.time()))
        port = port or free_port()
        stack = Stack(
            base_url=f"http://127.0.0.1:{port}",
            admin_key=admin_key,
            account_id=account_id,
            demo_key=demo_key,
            management_key=management_key,
            env=env,
            dynamo=dynamo,
            upstream=mock,
            upstream_kind=upstream,
            upstream_base_url=base_url,
            upstream_api_key=upstream_key,
            persist_dir=persist_dir,
        )
        started = [stack]  # from here on, stack.stop() stops everything
        bootstrap_relay(stack)
        if server_output is None:
            fd, name = tempfile.mkstemp(prefix="sluice-chalice-", suffix=".log")
            log_file = os.fdopen(fd, "wb")
            stack.log_path = Path(name)
        # One port, routed as API Gateway routes: /v1/* to the relay (served by the front
        # itself), the rest to `chalice local` (greedy paths, deep backlog) that it starts.
        command = [sys.executable, "-m", "devtools.front", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--stage", stage]
        stack.process = subprocess.Popen(
            command,
            cwd=str(REPO_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file or server_output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        atexit.register(stack.stop)
        _wait_healthy(stack, ready_timeout)
        return stack
    except BaseException:
        for component in reversed(started):
            component.stop()
        raise
    finally:
        if log_file is not None:
            log_file.close()
