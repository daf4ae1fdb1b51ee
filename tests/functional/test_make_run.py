"""``make run`` (python -m devtools.run): printed keys and curl lines work; Ctrl-C stops it all."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from devtools.ddblocal import find_jar, free_port
from devtools.mock_upstream import SLOW_DURATION_METADATA
from devtools.run import banner
from devtools.stack import start_stack

pytestmark = [pytest.mark.ddb_local, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
ADMIN_KEY = "make-run-admin-" + "a" * 24
CONCURRENT = 32
LONG_CALL_SECONDS = 40


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)

    def value(self, label: str) -> str:
        match = re.search(rf"{re.escape(label)}\s+(\S+)", self.text())
        assert match, f"{label!r} not printed:\n{self.text()}"
        return match.group(1)

    def curl(self, path: str) -> list[str]:
        for line in self.lines:
            if line.strip().startswith("curl ") and f"{path} " in line:
                return shlex.split(line)
        raise AssertionError(f"no curl line for {path}:\n{self.text()}")


def _pump(stream: IO[bytes], sink: queue.Queue[str | None]) -> None:
    """Drain the child's output for ever, so it never blocks on a full pipe."""
    for raw in iter(stream.readline, b""):
        sink.put(raw.decode("utf-8", errors="replace").rstrip("\n"))
    sink.put(None)


def start_run(port: int) -> Run:
    env = {**os.environ, "SLUICE_ADMIN_KEY": ADMIN_KEY}
    for name in ("UPSTREAM_BASE_URL", "UPSTREAM_API_KEY"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.run", "--port", str(port)],
        cwd=str(REPO_ROOT),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    run = Run(process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError(f"devtools.run exited early:\n{run.text()}")
        run.lines.append(line)
        if "Press Ctrl-C to stop." in line:
            return run
    stop_run(run)
    raise AssertionError(f"devtools.run not ready after {START_TIMEOUT:.0f}s:\n{run.text()}")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc (children, their children, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def is_gone(pid: int) -> bool:
    """No such process, or a zombie waiting to be reaped (it runs nothing any more)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def stop_run(run: Run) -> None:
    """Fallback cleanup: whatever is left of the run and what it started gets SIGKILL."""
    leftovers = descendants(run.process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.process.pid, signal.SIGKILL)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        run.process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def running() -> Iterator[Run]:
    run = start_run(free_port())
    try:
        yield run
    finally:
        if run.process.poll() is None:
            run.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.process.wait(timeout=STOP_TIMEOUT)
        stop_run(run)


def call_curl(argv: list[str]) -> httpx.Response:
    """What the printed curl line does, done with httpx (no curl needed on the machine)."""
    url = next(arg for arg in argv if arg.startswith("http://"))
    headers = dict(argv[i + 1].split(": ", 1) for i, arg in enumerate(argv) if arg == "-H")
    body = argv[argv.index("-d") + 1] if "-d" in argv else None
    method = "POST" if body is not None else "GET"
    return httpx.request(method, url, headers=headers, content=body, timeout=30.0)


def test_the_banner_names_every_key_and_url(running: Run) -> None:
    # GIVEN make run started with SLUICE_ADMIN_KEY set
    # WHEN its banner is read
    base_url = running.value("Sluice is running at")

    # THEN it shows that admin key, the demo account's keys, and curl lines for the key routes
    assert running.value("admin key:") == ADMIN_KEY
    assert running.value("demo management key (mk):").startswith("mk-")
    assert running.value("demo API key (sk):").startswith("sk-")
    assert base_url.startswith("http://127.0.0.1:")
    chat = running.curl("/v1/chat/completions")
    assert f"Authorization: Bearer {running.value('demo API key (sk):')}" in chat
    assert '"model": "gpt-4o-mini"' in chat[chat.index("-d") + 1]


def test_the_printed_account_and_tokens_curls_work(running: Run) -> None:
    # GIVEN the printed curl lines for /account and /tokens
    account_curl = running.curl("/account")
    tokens_curl = running.curl("/tokens")

    # WHEN they are run
    account = call_curl(account_curl)
    tokens = call_curl(tokens_curl)

    # THEN the demo account answers with US$10, and its default key is listed by preview only
    assert account.status_code == 200, account.text
    assert account.json()["name"] == "demo"
    assert account.json()["remaining_usd"] == "10.000000"
    assert tokens.status_code == 200, tokens.text
    listed = tokens.json()["data"]
    sk = running.value("demo API key (sk):")
    assert [t["key_preview"][:5] for t in listed] == [sk[:5]]
    assert sk not in tokens.text


class LongCalls:
    """A 40 s streamed call and a 40 s whole call on a key of their own, run side by side in
    the background, so the module's other tests run while they last."""

    def __init__(self, running: Run) -> None:
        self.base_url = running.value("Sluice is running at")
        self.mk = running.value("demo management key (mk):")
        made = httpx.post(
            f"{self.base_url}/tokens",
            json={"name": "long-calls"},
            headers={"Authorization": f"Bearer {self.mk}"},
            timeout=30,
        )
        assert made.status_code == 201, made.text
        self.token = made.json()["data"][0]
        self.ask = {
            "model": "demo-slow",
            "messages": [{"role": "user", "content": "Take your time."}],
            "metadata": {SLOW_DURATION_METADATA: str(LONG_CALL_SECONDS)},
        }
        self.first_event = threading.Event()
        self.outcome: dict[str, Any] = {}
        self.started = time.monotonic()
        self.threads = [
            threading.Thread(target=self._whole, daemon=True),
            threading.Thread(target=self._streamed, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token['key']}"}

    def _whole(self) -> None:
        response = httpx.post(
            f"{self.base_url}/v1/chat/completions",
            headers=self._headers(),
            json=self.ask,
            timeout=120.0,
        )
        self.outcome["whole"] = (response.status_code, response.json())

    def _streamed(self) -> None:
        data: list[str] = []
        with httpx.stream(
            "POST",
            f"{self.base_url}/v1/chat/completions",
            headers=self._headers(),
            json={**self.ask, "stream": True},
            timeout=120.0,
        ) as response:
            for line in response.iter_lines():
                if response.status_code != 200:
                    data.append(line)  # an error's body, for the assertion's message
                elif line.startswith("data: "):
                    data.append(line[6:])
                    self.first_event.set()
            self.outcome["streamed"] = (response.status_code, data)

    def join(self) -> float:
        """Wait for both (bounded); how long they took from their start."""
        for thread in self.threads:
            thread.join(timeout=120.0)
        return time.monotonic() - self.started


@pytest.fixture(scope="module")
def long_calls(running: Run) -> LongCalls:
    return LongCalls(running)


def test_forty_second_calls_are_under_way_with_their_reservation_held(
    long_calls: LongCalls,
) -> None:
    # GIVEN the two long calls started  WHEN the stream's first event has arrived
    assert long_calls.first_event.wait(timeout=60.0)
    key = httpx.get(
        f"{long_calls.base_url}/v1/key", headers=long_calls._headers(), timeout=30
    ).json()

    # THEN neither is answered yet, and the key holds their reservations
    assert "whole" not in long_calls.outcome and "streamed" not in long_calls.outcome
    assert key["reserved_units"] > 0


def test_the_printed_chat_curl_and_the_openai_sdk_get_answers_that_are_logged(
    running: Run,
) -> None:
    import openai

    # GIVEN the running stack and its demo API key
    base_url = running.value("Sluice is running at")
    sk = running.value("demo API key (sk):")
    mk = running.value("demo management key (mk):")

    # WHEN the printed chat curl runs, then the official SDK calls, plain and streamed
    curl = call_curl(running.curl("/v1/chat/completions"))
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=sk, max_retries=0, timeout=30)
    hello = [{"role": "user", "content": "Hello!"}]
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=hello)
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="gpt-4o-mini", messages=hello, stream=True
        )
        if chunk.choices
    )

    # THEN all three are answered
    assert curl.status_code == 200, curl.text
    assert curl.json()["choices"][0]["message"]["content"]
    assert plain.choices[0].message.content and streamed
    # AND /logs shows each call with its cost, and /v1/key shows the spend
    # (a stream is settled right after its last bytes: wait for it, bounded)
    costs: list[int] = []
    key: dict[str, object] = {}
    for _ in range(100):
        logs = httpx.get(
            f"{base_url}/logs",
            params={"token_id": sk[3:19], "limit": 100},
            headers={"Authorization": f"Bearer {mk}"},
            timeout=30,
        ).json()["data"]
        costs = [line["cost_units"] for line in logs if line["status"] == "ok"]
        key = httpx.get(f"{base_url}/v1/key", headers={"Authorization": f"Bearer {sk}"}).json()
        if len(costs) >= 3 and key["used_units"] == sum(costs):
            break
        time.sleep(0.1)
    assert len(costs) >= 3 and all(cost > 0 for cost in costs)
    assert key["used_units"] == sum(costs)


def test_the_openai_sdk_and_agent_frameworks_use_responses_and_completions(
    running: Run,
) -> None:
    import asyncio

    import agents
    import openai
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    # GIVEN the running stack, and clients that know only its base URL and the demo key
    base_url = f"{running.value('Sluice is running at')}/v1"
    sk = running.value("demo API key (sk):")
    client = openai.OpenAI(base_url=base_url, api_key=sk, max_retries=0, timeout=30)

    # WHEN the official SDK creates a response, streams one, continues and reads it back
    first = client.responses.create(model="gpt-4.1-mini", input="Hello!")
    with client.responses.stream(model="gpt-4.1-mini", input="Stream it") as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    follow = client.responses.create(
        model="gpt-4.1-mini", input="Again", previous_response_id=first.id
    )
    read = client.responses.retrieve(first.id)
    # (and answers in a conversation, whose items it then lists as OpenAI's SDK asks for them)
    conversation = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}],
        metadata={"topic": "names"},
    )
    in_it = client.responses.create(
        model="gpt-4.1-mini", input="What is my name?", conversation=conversation.id
    )
    items = client.conversations.items.list(
        conversation.id, order="asc", limit=10, include=["message.output_text.logprobs"]
    )
    gone = client.conversations.delete(conversation.id)
    legacy = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    legacy_streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True
        )
        if c.choices
    )

    # THEN each is answered, with the usage it was charged by
    assert first.output_text.endswith("Hello!") and first.usage is not None
    assert deltas.endswith("Stream it") and final.usage is not None
    assert follow.usage is not None and follow.usage.input_tokens_details.cached_tokens > 0
    assert read.id == first.id
    assert in_it.usage is not None and in_it.usage.input_tokens_details.cached_tokens > 0
    assert [item.type for item in items.data] == ["message"] * 3 and gone.deleted
    assert legacy.choices[0].text and legacy_streamed == legacy.choices[0].text

    # AND OpenAI's Agents SDK (its default Responses model) works with the same two settings
    agents.set_tracing_disabled(True)  # its traces would go to api.openai.com
    agents.set_default_openai_client(
        openai.AsyncOpenAI(base_url=base_url, api_key=sk, max_retries=0), use_for_tracing=False
    )
    agent = agents.Agent(name="demo", instructions="Be brief.", model="gpt-4.1-mini")
    result = asyncio.run(agents.Runner.run(agent, "Hello agent"))
    assert str(result.final_output).endswith("Hello agent")

    # AND so does Pydantic AI's OpenAIResponsesModel
    model = OpenAIResponsesModel(
        "gpt-4.1-mini", provider=OpenAIProvider(base_url=base_url, api_key=sk)
    )
    answered = Agent(model).run_sync("Hello pydantic")
    assert answered.output.endswith("Hello pydantic")


def test_the_printed_streaming_curl_streams_the_slow_demo_model_word_by_word(
    running: Run,
) -> None:
    # GIVEN the printed curl -N line
    [argv] = [shlex.split(line) for line in running.lines if line.strip().startswith("curl -sN ")]
    url = next(arg for arg in argv if arg.startswith("http://"))
    headers = dict(argv[i + 1].split(": ", 1) for i, arg in enumerate(argv) if arg == "-H")
    body = json.loads(argv[argv.index("-d") + 1])
    assert body["model"] == "demo-slow" and body["stream"] is True

    # WHEN it runs, read as it arrives
    with httpx.stream("POST", url, headers=headers, json=body, timeout=60.0) as response:
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]

    # THEN one word per event, [DONE] last
    words = [
        choice["delta"].get("content")
        for chunk in map(json.loads, data[:-1])
        for choice in chunk["choices"]
        if choice["delta"].get("content")
    ]
    assert response.status_code == 200 and data[-1] == "[DONE]"
    assert len(words) > 3 and all(len(word.split()) == 1 for word in words)


def test_the_admin_key_from_the_environment_is_the_one_that_works(running: Run) -> None:
    # GIVEN the admin key make run was given  WHEN it lists accounts
    response = httpx.get(
        f"{running.value('Sluice is running at')}/admin/accounts",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30.0,
    )

    # THEN the demo account is there
    assert response.status_code == 200, response.text
    assert [a["name"] for a in response.json()["data"]] == ["demo"]


def test_thirty_two_concurrent_connections_are_all_served(running: Run) -> None:
    # GIVEN 32 clients, each with its own connection, released at once
    url = f"{running.value('Sluice is running at')}/account"
    headers = {"Authorization": f"Bearer {running.value('demo management key (mk):')}"}
    start = threading.Barrier(CONCURRENT, timeout=30.0)
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=30.0) as http:
            start.wait()
            status = http.get(url, headers=headers).status_code
        with lock:
            statuses.append(status)

    # WHEN they all call /account
    threads = [threading.Thread(target=client, daemon=True) for _ in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60.0)

    # THEN every one of them got its 200
    assert statuses == [200] * CONCURRENT


class Webhook:
    """A loopback webhook receiver: each delivery's body and its signature header."""

    def __init__(self) -> None:
        self.deliveries: queue.Queue[tuple[bytes, str]] = queue.Queue()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.deliveries.put((body, self.headers.get("X-Sluice-Signature", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_crossed_threshold_reaches_a_webhook_through_the_local_streams(running: Run) -> None:
    from chalicelib.core import alerts

    # GIVEN a key whose alert fires at 1% of its quota, with a loopback webhook
    base_url = running.value("Sluice is running at")
    mk = {"Authorization": f"Bearer {running.value('demo management key (mk):')}"}
    hello = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
    sk = {"Authorization": f"Bearer {running.value('demo API key (sk):')}"}
    one_call = int(
        httpx.post(f"{base_url}/v1/chat/completions", json=hello, headers=sk, timeout=30).headers[
            "X-Sluice-Cost-Units"
        ]
    )
    made = httpx.post(
        f"{base_url}/tokens",
        json={"name": "alerted", "quota_units": 50 * one_call},
        headers=mk,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    created = made.json()["data"][0]
    hook = Webhook()
    try:
        put = httpx.put(
            f"{base_url}/tokens/{created['id']}/alerts",
            json={"webhook_url": hook.url, "thresholds": [1]},
            headers=mk,
            timeout=30,
        )
        assert put.status_code == 200, put.text

        # WHEN one call spends 2% of it
        called = httpx.post(
            f"{base_url}/v1/chat/completions",
            json=hello,
            headers={"Authorization": f"Bearer {created['key']}"},
            timeout=30,
        )
        assert called.status_code == 200, called.text

        # THEN the stream poller of make run delivers one signed crossing (bounded wait)
        body, signature = hook.deliveries.get(timeout=60)
    finally:
        hook.server.shutdown()
    delivery = json.loads(body)
    assert alerts.verify(put.json()["webhook_secret"], body, signature, int(time.time()))
    assert delivery["type"] == "budget.threshold_crossed"
    assert (delivery["token_id"], delivery["threshold"]) == (created["id"], 1)
    assert delivery["used_units"] == int(called.headers["X-Sluice-Cost-Units"])


@pytest.mark.skipif(
    shutil.which("java") is None or find_jar() is None,
    reason="persistence needs DynamoDB Local (moto's server keeps nothing)",
)
def test_persist_reuses_the_demo_account_and_issues_a_fresh_working_key(tmp_path: Path) -> None:
    # GIVEN a first start that persisted its data, and an extra key made through the API
    with start_stack(persist_dir=str(tmp_path), upstream="none") as first:
        made = httpx.post(
            f"{first.base_url}/tokens",
            headers={"Authorization": f"Bearer {first.management_key}"},
            json={"name": "kept"},
            timeout=30.0,
        )
        assert made.status_code == 201, made.text
        first_keys = (first.account_id, first.management_key, first.demo_key)

    # WHEN the stack starts again on the same data
    with start_stack(persist_dir=str(tmp_path), upstream="none") as second:
        listed = httpx.get(
            f"{second.base_url}/tokens",
            params={"account_id": second.account_id},
            headers={"Authorization": f"Bearer {second.admin_key}"},
            timeout=30.0,
        )
        old_management = httpx.get(
            f"{second.base_url}/account",
            headers={"Authorization": f"Bearer {first_keys[1]}"},
            timeout=30.0,
        )
        printed = banner(second)
        printed_curl = next(
            shlex.split(line) for line in printed.splitlines() if "/account" in line
        )
        via_banner = call_curl(printed_curl)

    # THEN the same demo account is reused, with a new API key next to the kept ones
    assert second.account_id == first_keys[0]
    assert second.demo_key != first_keys[2]
    assert listed.status_code == 200, listed.text
    assert {t["name"] for t in listed.json()["data"]} >= {"default", "kept"}
    assert len(listed.json()["data"]) == 3
    # AND a new management key, printed with a curl that works; the first one stopped working
    # (keys are stored only as hashes, so a restart can only issue new ones)
    assert second.management_key is not None and second.management_key != first_keys[1]
    assert second.management_key in printed
    assert old_management.status_code == 401
    assert via_banner.status_code == 200, via_banner.text
    assert via_banner.json()["id"] == first_keys[0]


def test_the_openai_sdk_makes_images_speech_transcripts_and_videos_charged_exactly(
    running: Run,
) -> None:
    import openai

    # GIVEN the running stack, its demo API key, and what the key has spent so far
    base_url = running.value("Sluice is running at")
    sk = running.value("demo API key (sk):")
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=sk, max_retries=0, timeout=30)

    def used() -> int:
        key = httpx.get(f"{base_url}/v1/key", headers={"Authorization": f"Bearer {sk}"})
        return int(key.json()["used_units"])

    before = used()

    # WHEN the official SDK generates an image, speaks, transcribes and makes a video
    image = client.images.generate(model="dall-e-3", prompt="a lighthouse", n=1)
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Hello from Sluice")
    audio = bytes(range(256)) * 20  # 5,120 bytes: 5.12 s of demo audio
    transcript = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio))
    job = client.videos.create(model="sora-2", prompt="a lighthouse at dusk", seconds="4")
    for _ in range(10):
        job = client.videos.retrieve(job.id)
        if job.status == "completed":
            break
    video = client.videos.download_content(job.id).read()

    # THEN each is answered as OpenAI's SDK expects
    assert image.data is not None and image.data[0].b64_json
    assert speech.read().startswith(b"ID3")
    assert transcript.text == "Transcript of 5120 bytes of demo audio."
    assert job.status == "completed" and video.startswith(b"\x00\x00\x00\x18ftyp")
    # AND the key paid exactly: US$0.04 + 17 chars at US$15/M + 6 s at US$0.006/min + 4 s x US$0.10
    assert used() - before == 20_000 + 128 + 300 + 200_000


def test_the_openai_sdk_edits_translates_streams_moderates_embeds_and_keeps_videos_private(
    running: Run,
) -> None:
    import hashlib
    import math

    import openai

    # GIVEN the running stack, its demo API key, and another account's key
    base_url = running.value("Sluice is running at")
    sk = running.value("demo API key (sk):")
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=sk, max_retries=0, timeout=30)
    other = httpx.post(
        f"{base_url}/admin/accounts",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"name": "other", "quota_usd": "1"},
        timeout=30,
    ).json()["default_token"]["key"]
    stranger = openai.OpenAI(base_url=f"{base_url}/v1", api_key=other, max_retries=0, timeout=30)

    def used() -> int:
        key = httpx.get(f"{base_url}/v1/key", headers={"Authorization": f"Bearer {sk}"})
        return int(key.json()["used_units"])

    before = used()
    picture = bytes(range(256)) * 3 + b"\x00\r\n--boundary--\r\n"  # bytes a sloppy relay breaks
    audio = bytes(range(256)) * 20  # 5,120 bytes: 5.12 s of demo audio

    # WHEN it edits an image, translates, streams a transcript, moderates and embeds
    edited = client.images.edit(model="dall-e-3", image=("in.png", picture), prompt="brighter")
    translated = client.audio.translations.create(model="whisper-1", file=("a.wav", audio))
    events = list(
        client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("a.wav", audio), stream=True
        )
    )
    moderated = client.moderations.create(model="omni-moderation-latest", input="hello")
    embedded = client.embeddings.create(model="text-embedding-3-small", input="hello")
    models = {model.id: model.model_extra for model in client.models.list()}
    # AND makes a video and remixes it, which another account then looks for
    job = client.videos.create(model="sora-2", prompt="a lighthouse", seconds="4")
    remix = client.videos.remix(job.id, prompt="at dawn")
    for video in (job, remix):
        for _ in range(10):
            if client.videos.retrieve(video.id).status == "completed":
                break
    listed = [video.id for video in client.videos.list()]
    hidden: list[int] = []
    for attempt in (
        lambda: stranger.videos.retrieve(job.id),
        lambda: stranger.videos.download_content(job.id),
        lambda: stranger.videos.remix(job.id, prompt="mine now"),
        lambda: stranger.videos.delete(job.id),
    ):
        with pytest.raises(openai.NotFoundError) as refused:
            attempt()
        hidden.append(refused.value.status_code)
    theirs = [video.id for video in stranger.videos.list()]
    deleted = client.videos.delete(remix.id)

    # THEN the image reached the provider byte for byte, and each answer is OpenAI's
    assert edited.data is not None and edited.data[0].revised_prompt is not None
    digest = hashlib.sha256(picture).hexdigest()
    assert f"image sha256 {digest}" in edited.data[0].revised_prompt
    assert translated.text == "Transcript of 5120 bytes of demo audio."
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta").strip() == (
        translated.text
    )
    assert moderated.results and embedded.data[0].embedding
    # AND the key's models list names what each serves
    assert models["dall-e-3"] == {"endpoints": ["images/generations", "images/edits"]}
    assert models["whisper-1"] == {"endpoints": ["audio/transcriptions", "audio/translations"]}
    # AND the videos are this account's alone
    assert {job.id, remix.id} <= set(listed) and deleted.deleted
    assert hidden == [404] * 4 and theirs == []
    # AND the key paid exactly: an image at US$0.04, 6 s at US$0.006/min, 52 + 10 tokens at
    # US$6 / US$10 per Mtok, a moderation at US$0.0002, the embedding's tokens at US$0.02 per
    # Mtok, and two 4 s videos at US$0.10/s
    assert embedded.usage is not None
    embedding_units = math.ceil(embedded.usage.prompt_tokens / 100)
    assert used() - before == 20_000 + 300 + 206 + 100 + embedding_units + 2 * 200_000


def test_a_responses_follow_up_reaches_the_channel_of_its_first_of_two_serving_the_model(
    running: Run,
) -> None:
    import openai

    from devtools.mock_upstream import MockUpstream

    # GIVEN a second provider (this test's own mock) added as a channel for gpt-4.1-mini, beside
    # the demo channel that serves it too
    base_url = running.value("Sluice is running at")
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    client = openai.OpenAI(
        base_url=f"{base_url}/v1",
        api_key=running.value("demo API key (sk):"),
        max_retries=0,
        timeout=30,
    )
    second = MockUpstream(host="127.0.0.1", port=0, api_key="second-provider-key").start()
    channel = {
        "id": "second",
        "name": "second",
        "base_url": second.base_url,
        "models": ["gpt-4.1-mini"],
        "api_key": "second-provider-key",
    }
    added = httpx.post(f"{base_url}/admin/channels", headers=admin, json=channel, timeout=30)
    assert added.status_code == 201, added.text
    try:
        # WHEN responses are made until both channels hold some (bounded: the relay's process
        # sees the new channel once its config cache, 10 s, has expired)
        firsts: list[str] = []
        for _ in range(150):
            firsts.append(client.responses.create(model="gpt-4.1-mini", input="Hi").id)
            held_there = [rid for rid in firsts if rid in second.responses]
            if held_there and len(held_there) < len(firsts) and len(firsts) >= 4:
                break
            time.sleep(0.1)
        # AND each is followed up with previous_response_id
        follows = {
            rid: client.responses.create(
                model="gpt-4.1-mini", input="Again", previous_response_id=rid
            )
            for rid in firsts
        }
    finally:
        httpx.delete(f"{base_url}/admin/channels/second", headers=admin, timeout=30)
        second.stop()

    # THEN both channels held first responses, and every follow-up went where its first was:
    # the provider that holds it (a follow-up elsewhere would not find it, nor its cached tokens)
    held_there = {rid for rid in firsts if rid in second.responses}
    assert held_there and held_there != set(firsts)
    for rid, follow in follows.items():
        assert (follow.id in second.responses) == (rid in held_there), rid
        assert follow.usage is not None and follow.usage.input_tokens_details.cached_tokens > 0


def test_the_audit_log_shows_a_keys_life_and_an_operator_key_by_its_id(running: Run) -> None:
    from chalicelib.core import keys

    # GIVEN the demo account's management key, and an operator key that may edit accounts
    base_url = running.value("Sluice is running at")
    mk = running.value("demo management key (mk):")
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    tenant = {"Authorization": f"Bearer {mk}"}
    account_id = httpx.get(f"{base_url}/account", headers=tenant, timeout=30).json()["id"]
    body = {"name": "auditor", "scopes": ["accounts:write", "audit:read"]}
    ops = httpx.post(f"{base_url}/admin/keys", headers=admin, json=body, timeout=30).json()

    # WHEN the tenant creates a key, disables it and deletes it, and the operator key makes one
    made = httpx.post(f"{base_url}/tokens", headers=tenant, json={"name": "au"}, timeout=30)
    token = made.json()["data"][0]
    path = f"{base_url}/tokens/{token['id']}"
    disabled = httpx.patch(path, headers=tenant, json={"status": "disabled"}, timeout=30)
    deleted = httpx.delete(path, headers=tenant, timeout=30)
    by_ops = httpx.post(
        f"{base_url}/tokens",
        params={"account_id": account_id},
        headers={"Authorization": f"Bearer {ops['key']}"},
        json={"name": "by-ops"},
        timeout=30,
    )
    assert (made.status_code, disabled.status_code, deleted.status_code) == (201, 200, 204)
    assert by_ops.status_code == 201, by_ops.text
    ops_token = by_ops.json()["data"][0]
    trail = httpx.get(
        f"{base_url}/audit",
        params={"target_type": "token", "target_id": token["id"]},
        headers=tenant,
        timeout=30,
    )
    ops_trail = httpx.get(
        f"{base_url}/audit",
        params={"target_type": "token", "target_id": ops_token["id"]},
        headers={"Authorization": f"Bearer {ops['key']}"},
        timeout=30,
    )

    # THEN the key's trail is create -> disable -> delete, by the account, with no secret
    assert trail.status_code == 200, trail.text
    records = trail.json()["data"]
    assert [r["action"] for r in records] == ["token.delete", "token.update", "token.create"]
    assert {r["actor"] for r in records} == {account_id}
    assert records[1]["changes"] == {"status": {"old": "enabled", "new": "disabled"}}
    assert all(r["source_ip"] == "127.0.0.1" and r["request_id"] for r in records)
    for secret in (token["key"], mk):
        assert secret not in trail.text and keys.hash_key(secret) not in trail.text
    # AND the operator key's creation names it by its id
    assert ops_trail.status_code == 200, ops_trail.text
    assert [(r["action"], r["actor"]) for r in ops_trail.json()["data"]] == [
        ("token.create", f"ops:{ops['id']}")
    ]
    assert ops["key"] not in ops_trail.text


def test_a_tenant_gets_only_the_groups_the_operator_grants(running: Run) -> None:
    # Near the end of this module: it adds a key and moves the demo channel to another group.
    base_url = running.value("Sluice is running at")
    mk = running.value("demo management key (mk):")
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    tenant = {"Authorization": f"Bearer {mk}"}
    account_id = httpx.get(f"{base_url}/account", headers=tenant, timeout=30).json()["id"]
    created = httpx.post(f"{base_url}/tokens", headers=tenant, json={"name": "g"}, timeout=30)
    token = created.json()["data"][0]
    # The operator's "vip" group: the demo channel moves there (it keeps its provider key).
    moved_channel = httpx.patch(
        f"{base_url}/admin/channels/demo", headers=admin, json={"group": "vip"}, timeout=30
    )
    assert moved_channel.status_code == 200, moved_channel.text

    # WHEN the tenant moves its key to "vip" before the operator granted it
    moved = httpx.patch(f"{base_url}/tokens/{token['id']}", headers=tenant, json={"group": "vip"})
    # THEN 403 group_not_allowed, and the key is unchanged
    assert moved.status_code == 403 and moved.json()["error"]["code"] == "group_not_allowed"
    again = httpx.get(f"{base_url}/tokens/{token['id']}", headers=tenant, timeout=30).json()
    assert again["group"] == "default"

    # WHEN the operator grants it, the move is accepted and the key relays through vip
    grant = {"groups": ["default", "vip"]}
    assert httpx.patch(f"{base_url}/admin/accounts/{account_id}", headers=admin, json=grant)
    moved = httpx.patch(f"{base_url}/tokens/{token['id']}", headers=tenant, json={"group": "vip"})
    assert moved.status_code == 200 and moved.json()["group"] == "vip", moved.text
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    key = {"Authorization": f"Bearer {token['key']}"}
    # (the relay's process sees the moved channel once its config cache, 10 s, has expired)
    for _ in range(150):
        relayed = httpx.post(f"{base_url}/v1/chat/completions", headers=key, json=chat, timeout=30)
        if relayed.status_code != 404:
            break
        time.sleep(0.1)
    assert relayed.status_code == 200, relayed.text

    # WHEN the operator revokes it, the key's very next call is refused
    revoke = {"groups": ["default"]}
    assert httpx.patch(f"{base_url}/admin/accounts/{account_id}", headers=admin, json=revoke)
    refused = httpx.post(f"{base_url}/v1/chat/completions", headers=key, json=chat, timeout=30)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "group_not_allowed"


def test_a_forty_second_streamed_call_and_a_forty_second_whole_call_both_complete(
    long_calls: LongCalls,
) -> None:
    # GIVEN the demo upstream told (per request) to take 40 s over demo-slow, on both calls
    # (started by the fixture; the tests between ran meanwhile)
    # WHEN both have ended
    took = long_calls.join()

    # THEN both are answered in full: the stream word by word with [DONE] last, and they did
    # last the 40 s (so neither was cut by a timeout on the way)
    streamed_status, data = long_calls.outcome["streamed"]
    assert streamed_status == 200 and data[-1] == "[DONE]", data
    words = [
        choice["delta"].get("content")
        for chunk in map(json.loads, data[:-1])
        for choice in chunk["choices"]
        if choice["delta"].get("content")
    ]
    assert len(words) > 3 and all(len(word.split()) == 1 for word in words)
    status, body = long_calls.outcome["whole"]
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "".join(words)
    assert took >= LONG_CALL_SECONDS
    # AND both are logged as answered and charged (the stream settles just after its bytes),
    # with nothing left reserved on the key
    long: list[dict[str, Any]] = []
    key: dict[str, Any] = {}
    for _ in range(100):
        logs = httpx.get(
            f"{long_calls.base_url}/logs",
            params={"token_id": long_calls.token["id"], "limit": 100},
            headers={"Authorization": f"Bearer {long_calls.mk}"},
            timeout=30,
        ).json()["data"]
        long = [line for line in logs if line["latency_ms"] >= LONG_CALL_SECONDS * 1000]
        key = httpx.get(
            f"{long_calls.base_url}/v1/key", headers=long_calls._headers(), timeout=30
        ).json()
        if len(long) >= 2 and key["reserved_units"] == 0:
            break
        time.sleep(0.1)
    assert sorted(line["stream"] for line in long) == [False, True], long
    assert all(line["status"] == "ok" and line["cost_units"] > 0 for line in long)
    assert key["reserved_units"] == 0
    assert key["used_units"] == sum(line["cost_units"] for line in long)


def test_ctrl_c_stops_the_run_and_every_process_it_started(running: Run) -> None:
    # Last in this module: it stops the module's make run (the fixture then finds it gone).
    # GIVEN make run, with DynamoDB and chalice local running below it
    children = descendants(running.process.pid)
    commands = " | ".join(command_line(pid) for pid in children)
    assert "chalice" in commands and "local" in commands, commands
    assert "DynamoDBLocal.jar" in commands or "moto.server" in commands, commands
    base_url = running.value("Sluice is running at")

    # WHEN it gets SIGINT, as from Ctrl-C
    running.process.send_signal(signal.SIGINT)
    code = running.process.wait(timeout=STOP_TIMEOUT)

    # THEN it exits cleanly, nothing it started is left, and the port no longer answers
    assert code == 0, running.text()
    assert [pid for pid in children if not is_gone(pid)] == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/health", timeout=2.0)
