"""The lean DynamoDB client (``chalicelib/store/wire.py``) against a scripted DynamoDB on
127.0.0.1: its signature is botocore's, and it retries exactly where botocore's legacy mode does.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from chalicelib.store import wire

KEYS = wire.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
UPDATE = {"TableName": "t-tokens", "Key": {"id": {"S": "a"}}, "UpdateExpression": "ADD n :one"}


@dataclass
class Answer:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    crc: str | None = None  # None: the right one
    close: bool = False  # hang up after answering, saying so
    hang_up: bool = False  # hang up after answering, without a word
    framing: str = "length"  # or "chunked" (in pieces of 7 bytes), or "close" (no length)


class Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted answer; records what it was sent."""

    protocol_version = "HTTP/1.1"  # keep-alive, as DynamoDB

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server: Any = self.server
        with server.lock:
            server.seen.append((dict(self.headers.items()), body))
            server.peers.append(self.client_address)
            table = json.loads(body or b"{}").get("TableName")
            by_table = server.by_table.get(table)
            if by_table:
                answer = by_table.pop(0)
            else:
                answer = server.script.pop(0) if server.script else Answer()
        if server.barrier is not None:
            try:  # answer nothing until the other request has come as well
                server.barrier.wait()
            except threading.BrokenBarrierError:
                answer = Answer(500, {"__type": "InternalServerError", "message": "alone"})
        data = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", wire.DYNAMODB.content_type)
        if answer.framing == "length":
            self.send_header("Content-Length", str(len(data)))
        elif answer.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        crc = str(zlib.crc32(data) & 0xFFFFFFFF) if answer.crc is None else answer.crc
        self.send_header("x-amz-crc32", crc)
        if answer.close or answer.framing == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        if answer.hang_up:
            self.close_connection = True
        self.end_headers()
        if answer.framing == "chunked":
            for start in range(0, len(data), 7):
                piece = data[start : start + 7]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def dynamo() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.seen = []
    server.peers = []
    server.script = []
    server.by_table = {}
    server.barrier = None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(server: Any, keys: wire.Credentials = KEYS, **kw: Any) -> wire.Wire:
    slept: list[float] = []
    client = wire.Wire(
        f"http://127.0.0.1:{server.server_address[1]}",
        "eu-west-1",
        lambda: keys,
        sleep=slept.append,
        **kw,
    )
    client.slept = slept  # type: ignore[attr-defined]
    return client


def _botocore_signature(
    headers: dict[str, str], body: bytes, keys: wire.Credentials, service: str = "dynamodb"
) -> str:
    """What botocore's SigV4 signer makes of the same request at the same instant, over the
    headers the request says it signed (http.client adds Content-Length and Accept-Encoding)."""
    signed = headers["Authorization"].split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")
    assert signed == sorted(
        {"content-type", "host", "x-amz-date", "x-amz-target"}
        | ({"x-amz-security-token"} if keys.token else set())
    )
    request = AWSRequest(
        method="POST",
        url=f"http://{headers['Host']}/",
        data=body,
        headers={k: v for k, v in headers.items() if k.lower() in signed and k != "Host"},
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    auth = SigV4Auth(
        BotoCredentials(keys.access_key, keys.secret_key, keys.token), service, "eu-west-1"
    )
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


@pytest.mark.parametrize("token", [None, "session-token-from-the-role"], ids=["keys", "session"])
def test_signature_is_the_one_botocore_computes(dynamo: Any, token: str | None) -> None:
    # GIVEN credentials with or without a session token (Lambda's role has one)
    keys = wire.Credentials(KEYS.access_key, KEYS.secret_key, token)

    # WHEN a request is sent
    _client(dynamo, keys).call("UpdateItem", UPDATE)

    # THEN it carries botocore's signature over exactly the headers it sent
    headers, body = dynamo.seen[0]
    assert json.loads(body) == UPDATE
    assert headers["X-Amz-Target"] == "DynamoDB_20120810.UpdateItem"
    assert headers.get("X-Amz-Security-Token") == token
    authorization = headers["Authorization"]
    assert (
        f"Credential={KEYS.access_key}/" in authorization
        and "/eu-west-1/dynamodb/" in authorization
    )
    assert authorization.endswith("Signature=" + _botocore_signature(headers, body, keys))


def test_ssm_reads_are_signed_for_ssm_in_its_own_protocol(dynamo: Any) -> None:
    # GIVEN a client for SSM, with a role's session token
    keys = wire.Credentials(KEYS.access_key, KEYS.secret_key, "session-token-from-the-role")
    dynamo.script = [Answer(200, {"Parameter": {"Name": "/p", "Value": "v", "Version": 3}})]
    client = _client(dynamo, keys, service=wire.SSM)

    # WHEN it reads a parameter
    answer = client.call("GetParameter", {"Name": "/p", "WithDecryption": True})

    # THEN the answer is SSM's, asked for in SSM's JSON dialect, signed as botocore signs for SSM
    assert answer["Parameter"]["Value"] == "v"
    headers, body = dynamo.seen[0]
    assert json.loads(body) == {"Name": "/p", "WithDecryption": True}
    assert headers["X-Amz-Target"] == "AmazonSSM.GetParameter"
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert "/eu-west-1/ssm/aws4_request" in headers["Authorization"]
    assert headers["Authorization"].endswith(
        "Signature=" + _botocore_signature(headers, body, keys, "ssm")
    )


def test_a_channel_key_in_ssm_is_read_over_the_lean_client_where_the_environment_decides(
    dynamo: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from chalicelib.core.settings import Settings
    from chalicelib.store import secrets

    # GIVEN Lambda's environment: keys in it, SSM's endpoint here (the scripted server)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", f"http://127.0.0.1:{dynamo.server_address[1]}")
    dynamo.script = [
        Answer(200, {"Parameter": {"Name": "/sluice/prod/channels/c1", "Value": "sk-up"}})
    ]
    secrets.forget()
    settings = Settings(region="eu-west-1", dynamodb_client="lean")

    try:
        # WHEN the key is read twice THEN it is SSM's value, read once per container
        assert secrets.ssm_parameter("/sluice/prod/channels/c1:4", settings) == "sk-up"
        assert secrets.ssm_parameter("/sluice/prod/channels/c1:4", settings) == "sk-up"
    finally:
        secrets.forget()
    assert len(dynamo.seen) == 1
    headers, body = dynamo.seen[0]
    assert headers["X-Amz-Target"] == "AmazonSSM.GetParameter"
    assert json.loads(body) == {"Name": "/sluice/prod/channels/c1:4", "WithDecryption": True}


def test_throttling_is_retried_with_backoff_and_then_answers(dynamo: Any) -> None:
    # GIVEN a DynamoDB that throttles twice
    throttled = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "x"}
    dynamo.script = [Answer(400, throttled), Answer(400, throttled), Answer(200, {"ok": 1})]
    client = _client(dynamo)

    # WHEN a write is sent
    answer = client.call("UpdateItem", UPDATE)

    # THEN the third attempt's answer comes back, after two jittered waits under botocore's
    assert answer == {"ok": 1}
    assert len(dynamo.seen) == 3
    waits = client.slept  # type: ignore[attr-defined]
    assert len(waits) == 2 and 0 <= waits[0] <= 0.05 and 0 <= waits[1] <= 0.1


def test_a_refused_condition_is_not_retried_and_carries_the_old_item(dynamo: Any) -> None:
    # GIVEN a write whose condition is false
    item = {"id": {"S": "a"}, "status": {"S": "disabled"}}
    refused = {
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed",
        "Item": item,
    }
    dynamo.script = [Answer(400, refused)]

    # WHEN it is sent
    with pytest.raises(wire.WireError) as raised:
        _client(dynamo).call("UpdateItem", UPDATE)

    # THEN it is sent once, and the error says why, with the item as it was
    assert len(dynamo.seen) == 1
    assert raised.value.code == "ConditionalCheckFailedException"
    assert raised.value.status == 400 and raised.value.response["Item"] == item


def test_server_errors_are_retried_up_to_the_attempt_limit(dynamo: Any) -> None:
    # GIVEN a DynamoDB that only answers 500
    broken = {"__type": "com.amazon.coral.service#InternalServerError", "message": "x"}
    dynamo.script = [Answer(500, broken) for _ in range(10)]

    # WHEN a write is sent
    with pytest.raises(wire.WireError) as raised:
        _client(dynamo).call("UpdateItem", UPDATE)

    # THEN it was tried five times, as botocore's legacy mode does, and the last error is raised
    assert len(dynamo.seen) == wire.MAX_ATTEMPTS == 5
    assert raised.value.code == "InternalServerError" and raised.value.status == 500


def test_a_damaged_answer_is_retried(dynamo: Any) -> None:
    # GIVEN an answer whose CRC32 does not match its body, then a good one
    dynamo.script = [Answer(200, {"Attributes": {}}, crc="1"), Answer(200, {"ok": 2})]

    # WHEN a write is sent THEN the damaged answer is not taken
    assert _client(dynamo).call("UpdateItem", UPDATE) == {"ok": 2}
    assert len(dynamo.seen) == 2


def test_a_connection_the_server_closed_is_replaced_without_spending_an_attempt(
    dynamo: Any,
) -> None:
    # GIVEN a client whose kept-alive connection the server hangs up after one answer
    client = _client(dynamo, max_attempts=1)
    dynamo.script = [Answer(200, {"first": 1}, close=True), Answer(200, {"second": 2})]
    assert client.call("UpdateItem", UPDATE) == {"first": 1}

    # WHEN the next write goes out, with a single attempt allowed
    answer = client.call("UpdateItem", UPDATE)

    # THEN it went over a fresh connection and was answered
    assert answer == {"second": 2}
    assert len(dynamo.seen) == 2


def test_a_connection_the_server_dropped_silently_is_replaced_before_it_is_used(
    dynamo: Any,
) -> None:
    # GIVEN a client whose server closes the connection after answering, without saying so
    client = _client(dynamo, max_attempts=1)
    dynamo.script = [Answer(200, {"first": 1}, hang_up=True), Answer(200, {"second": 2})]
    assert client.call("UpdateItem", UPDATE) == {"first": 1}
    # (the server's FIN has reached the client's socket)
    sock, _ = client._local.connections[0]
    assert wait_until_readable(sock)

    # WHEN the next write goes out, with a single attempt allowed
    answer = client.call("UpdateItem", UPDATE)

    # THEN it went out once, on a new connection
    assert answer == {"second": 2}
    assert len(dynamo.seen) == 2 and dynamo.peers[0] != dynamo.peers[1]


def test_a_connection_idle_too_long_is_replaced(dynamo: Any) -> None:
    # GIVEN a kept-alive connection that was last used longer ago than the idle limit
    client = _client(dynamo)
    client.call("UpdateItem", UPDATE)
    client.call("UpdateItem", UPDATE)
    assert dynamo.peers[0] == dynamo.peers[1]  # kept alive while in use
    sock, used_at = client._local.connections[0]
    client._local.connections[0] = (sock, used_at - wire.IDLE_SECONDS - 1)

    # WHEN the next write goes out THEN it is on a new connection
    client.call("UpdateItem", UPDATE)
    assert dynamo.peers[2] != dynamo.peers[1]


def wait_until_readable(sock: Any) -> bool:
    import select

    readable, _, _ = select.select([sock], [], [], 5)
    return bool(readable)


def test_no_server_is_a_connection_error_after_every_attempt() -> None:
    # GIVEN an endpoint where nothing listens
    from support import free_port

    slept: list[float] = []
    client = wire.Wire(
        f"http://127.0.0.1:{free_port()}", "eu-west-1", lambda: KEYS, sleep=slept.append
    )

    # WHEN a write is sent THEN it fails as "no answer" after five attempts
    with pytest.raises(wire.WireError) as raised:
        client.call("UpdateItem", UPDATE)
    assert raised.value.status == 0 and raised.value.code == "ConnectionError"
    assert len(slept) == wire.MAX_ATTEMPTS - 1


def test_hooks_see_each_call_and_may_answer_an_attempt(dynamo: Any) -> None:
    # GIVEN hooks on every UpdateItem: one answers the first attempt with a throttle
    seen: list[str] = []

    class Throttle:
        status_code = 400
        content = b'{"__type":"ProvisionedThroughputExceededException","message":"x"}'

    def before_send(event_name: str, attempt: int, **_: Any) -> Any:
        seen.append(f"send {attempt}")
        return Throttle() if attempt == 1 else None

    def before_call(event_name: str, params: dict[str, Any], **_: Any) -> None:
        seen.append(f"call {event_name} {params['TableName']}")

    def after_call(status: int, parsed: dict[str, Any], **_: Any) -> None:
        seen.append(f"done {status} {parsed}")

    wire.hooks.register("before-call.dynamodb", before_call, unique_id="t")
    wire.hooks.register_first("before-send.dynamodb.UpdateItem", before_send, unique_id="t")
    wire.hooks.register("after-call.dynamodb.UpdateItem", after_call, unique_id="t")
    try:
        # WHEN a write is sent
        _client(dynamo).call("UpdateItem", UPDATE)
    finally:
        for event in ("before-call.dynamodb", "before-send.dynamodb.UpdateItem"):
            wire.hooks.unregister(event, unique_id="t")
        wire.hooks.unregister("after-call.dynamodb.UpdateItem", unique_id="t")

    # THEN the hooks ran in order, the answered attempt never reached DynamoDB, and none is left
    assert seen == [
        "call before-call.dynamodb.UpdateItem t-tokens",
        "send 1",
        "send 2",
        "done 200 {}",
    ]
    assert len(dynamo.seen) == 1
    assert not wire.hooks._handlers


@pytest.mark.parametrize(
    ("env", "endpoint", "region"),
    [
        ({"AWS_REGION": "eu-west-1"}, "https://dynamodb.eu-west-1.amazonaws.com/", "eu-west-1"),
        ({"AWS_REGION": "cn-north-1"}, "https://dynamodb.cn-north-1.amazonaws.com.cn/", None),
        (
            {"AWS_REGION": "us-east-1", "AWS_USE_FIPS_ENDPOINT": "true"},
            "https://dynamodb-fips.us-east-1.amazonaws.com/",
            None,
        ),
        (
            {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"},
            "http://127.0.0.1:9/",
            None,
        ),
    ],
    ids=["region", "china", "fips", "endpoint-url"],
)
def test_in_aws_the_writes_go_where_botocore_sends_the_reads(
    tables: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], endpoint: str, region: Any
) -> None:
    from chalicelib.core.settings import get_settings, reset_settings
    from chalicelib.store import common, configure_store, models

    # GIVEN a stage whose botocore client resolves its endpoint from the environment
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    configure_store(get_settings())
    models.configure(get_settings())  # a fresh botocore client that sees the environment

    # WHEN the lean client is made THEN it aims at botocore's endpoint and signing region
    lean = common._wire_like_botocore()
    client = common.connection().client
    assert lean is not None and lean.url == endpoint == client.meta.endpoint_url.rstrip("/") + "/"
    assert lean.region == client.meta.region_name == (region or env["AWS_REGION"])


ENVIRONMENTS = {
    "region": {"AWS_REGION": "eu-west-1"},
    "china": {"AWS_REGION": "cn-north-1"},
    "endpoint-url": {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"},
    "any-service-url": {"AWS_REGION": "ap-south-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:7"},
    "sluice-endpoint": {
        "AWS_REGION": "us-west-2",
        "SLUICE_DYNAMODB_ENDPOINT": "http://127.0.0.1:8",
    },
    "session-token": {"AWS_REGION": "eu-central-1", "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLE"},
}
LEFT_TO_BOTOCORE = {
    "fips": {"AWS_REGION": "us-east-1", "AWS_USE_FIPS_ENDPOINT": "true"},
    "dual-stack": {"AWS_REGION": "us-east-1", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
    "profile": {"AWS_REGION": "us-east-1", "AWS_PROFILE": "ops"},
    "gov-cloud": {"AWS_REGION": "us-gov-west-1"},
    "proxy": {"AWS_REGION": "us-east-1", "HTTPS_PROXY": "http://127.0.0.1:3128"},
    "no-keys": {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": ""},
}


def _environment(monkeypatch: pytest.MonkeyPatch, home: Path, env: dict[str, str]) -> Any:
    from chalicelib.core.settings import get_settings, reset_settings
    from chalicelib.store import configure_store, models

    monkeypatch.setenv("HOME", str(home))  # no ~/.aws/config here
    for name in ("NO_PROXY", "no_proxy", "AWS_SESSION_TOKEN", "SLUICE_DYNAMODB_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    configure_store(get_settings())
    models.configure(get_settings())  # a fresh botocore client that sees the environment
    return get_settings()


@pytest.mark.parametrize("env", ENVIRONMENTS.values(), ids=ENVIRONMENTS.keys())
def test_from_the_environment_it_is_made_as_botocore_would_make_it(
    tables: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]
) -> None:
    from chalicelib.store import common

    # GIVEN credentials and an endpoint that the environment alone decides (as in Lambda)
    settings = _environment(monkeypatch, tmp_path, env)

    # WHEN the lean client is made without botocore
    lean = common._wire_from_environment(settings)

    # THEN it aims where botocore's client does, signs for its region, with its credentials
    # and its certificate authorities
    client = common.connection().client
    assert lean is not None
    assert lean.url == client.meta.endpoint_url.rstrip("/") + "/"
    assert lean.region == client.meta.region_name
    assert lean._credentials() == common._signing_credentials()
    assert lean._ca_file == common._ca_bundle()


@pytest.mark.parametrize("env", LEFT_TO_BOTOCORE.values(), ids=LEFT_TO_BOTOCORE.keys())
def test_where_botocore_would_decide_otherwise_the_environment_makes_no_client(
    tables: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]
) -> None:
    from chalicelib.store import common

    # GIVEN a profile, FIPS, dual-stack, another partition, a proxy or no keys
    settings = _environment(monkeypatch, tmp_path, env)

    # WHEN the lean client would be made from the environment THEN botocore must resolve it
    assert common._wire_from_environment(settings) is None


def test_a_config_file_leaves_the_resolution_to_botocore(
    tables: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from chalicelib.store import common

    # GIVEN an AWS config file, which may set an endpoint, FIPS or a CA bundle
    settings = _environment(monkeypatch, tmp_path, {"AWS_REGION": "us-east-1"})
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "config").write_text("[default]\nuse_fips_endpoint = true\n")

    # THEN the environment alone makes no client
    assert common._wire_from_environment(settings) is None


def test_with_a_ca_bundle_set_it_trusts_that_bundle(
    tables: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from chalicelib.store import common

    # GIVEN AWS_CA_BUNDLE (a corporate proxy's authority, say)
    env = {"AWS_REGION": "us-east-1", "AWS_CA_BUNDLE": "/etc/corporate/ca.pem"}
    settings = _environment(monkeypatch, tmp_path, env)

    # THEN the client made from the environment trusts it, as botocore does
    lean = common._wire_from_environment(settings)
    assert lean is not None and lean._ca_file == common._ca_bundle() == "/etc/corporate/ca.pem"


def test_where_botocore_would_use_a_proxy_it_carries_every_call(
    tables: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import common

    # GIVEN a proxy in the environment for DynamoDB's endpoint
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    # WHEN the lean client would be made THEN there is none: botocore sends the writes too
    assert common._wire_like_botocore() is None


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_answers_framed_without_a_length_are_read_whole(dynamo: Any, framing: str) -> None:
    # GIVEN answers sent in chunks, or without a length until the server closes
    item = {"Attributes": {"pending": {"M": {f"r{n}": {"N": str(n)} for n in range(40)}}}}
    dynamo.script = [Answer(200, item, framing=framing), Answer(200, {"next": 1})]
    client = _client(dynamo, max_attempts=1)

    # WHEN two writes are sent THEN each answer is read whole, and the connection still serves
    assert client.call("UpdateItem", UPDATE) == item
    assert client.call("UpdateItem", UPDATE) == {"next": 1}
    assert len(dynamo.seen) == 2


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), signed by itself."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_over_https_it_verifies_the_server_against_its_certificate_authorities(
    dynamo: Any, tmp_path: Path
) -> None:
    # GIVEN the scripted DynamoDB behind TLS, with a certificate of its own
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    dynamo.socket = context.wrap_socket(dynamo.socket, server_side=True)
    endpoint = f"https://127.0.0.1:{dynamo.server_address[1]}"
    dynamo.script = [Answer(200, {"over": "tls"})]

    # WHEN a client that trusts that certificate sends a write THEN it is answered
    trusting = wire.Wire(endpoint, "eu-west-1", lambda: KEYS, ca_file=str(cert_file))
    assert trusting.call("UpdateItem", UPDATE) == {"over": "tls"}

    # AND one that trusts only the usual authorities refuses the server, on every attempt
    doubting = wire.Wire(endpoint, "eu-west-1", lambda: KEYS, sleep=lambda _: None)
    with pytest.raises(wire.WireError) as raised:
        doubting.call("UpdateItem", UPDATE)
    assert raised.value.status == 0 and raised.value.code == "ConnectionError"
    assert len(dynamo.seen) == 1


def test_the_store_gives_it_the_certificate_authorities_botocore_would_use(
    tables: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.httpsession import get_cert_path

    from chalicelib.store import common

    # GIVEN no CA bundle configured THEN botocore's default one
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    assert common._ca_bundle() == get_cert_path(True)

    # GIVEN AWS_CA_BUNDLE (a corporate proxy's authority, say) THEN that one, as botocore does
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/corporate/ca.pem")
    assert common._ca_bundle() == "/etc/corporate/ca.pem"


@pytest.mark.parametrize(
    ("status", "content"),
    [(200, b'{"Attributes": {"n"'), (200, b""), (429, b"Too Many Requests")],
    ids=["cut-200", "empty-200", "bare-429"],
)
def test_an_answer_that_is_not_one_is_retried_not_returned(
    dynamo: Any, status: int, content: bytes
) -> None:
    # GIVEN a first answer that is no DynamoDB answer (a cut or empty body, a proxy's bare 429),
    # then a whole one
    class Cut:
        status_code = status

    Cut.content = content  # type: ignore[attr-defined]
    answers = [Cut()]
    wire.hooks.register_first(
        "before-send.dynamodb", lambda **_: answers.pop() if answers else None, unique_id="cut"
    )
    dynamo.script = [Answer(200, {"Attributes": {"n": {"N": "1"}}})]
    try:
        # WHEN a write is sent THEN the whole answer is the one returned
        assert _client(dynamo).call("UpdateItem", UPDATE) == {"Attributes": {"n": {"N": "1"}}}
    finally:
        wire.hooks.unregister("before-send.dynamodb", unique_id="cut")
    assert len(dynamo.seen) == 1


def test_a_429_that_never_stops_is_throttling_after_every_attempt(dynamo: Any) -> None:
    # GIVEN a proxy in front of DynamoDB that answers every attempt with a bare 429
    class Bare:
        status_code = 429
        content = b"Too Many Requests"

    attempts: list[int] = []

    def answer(attempt: int, **_: Any) -> Bare:
        attempts.append(attempt)
        return Bare()

    wire.hooks.register_first("before-send.dynamodb", answer, unique_id="bare")
    try:
        # WHEN a write is sent THEN it fails as throttled (a 429 to the client), after 5 tries
        with pytest.raises(wire.WireError) as raised:
            _client(dynamo).call("UpdateItem", UPDATE)
    finally:
        wire.hooks.unregister("before-send.dynamodb", unique_id="bare")
    assert (raised.value.status, raised.value.code) == (429, "ThrottlingException")
    assert attempts == [1, 2, 3, 4, 5] and dynamo.seen == []


def test_an_unreadable_200_is_never_quoted_in_the_error(dynamo: Any) -> None:
    # GIVEN an SSM read whose every answer is a 200 cut short: it holds part of the secret
    class Cut:
        status_code = 200
        content = b'{"Parameter": {"Value": "sk-upstream-secret'

    wire.hooks.register_first("before-send.ssm", lambda **_: Cut(), unique_id="cut")
    try:
        # WHEN the read gives up THEN its error says what happened, and nothing of the body
        with pytest.raises(wire.WireError) as raised:
            _client(dynamo, service=wire.SSM).call("GetParameter", {"Name": "/p"})
    finally:
        wire.hooks.unregister("before-send.ssm", unique_id="cut")
    assert raised.value.code == "UnparsableAnswer"
    assert "secret" not in str(raised.value) and "secret" not in repr(raised.value.response)


def test_the_legacy_security_token_signs_as_botocore_reads_it(
    tables: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from chalicelib.store import common

    # GIVEN temporary credentials whose token is in the legacy AWS_SECURITY_TOKEN
    env = {"AWS_REGION": "eu-west-1", "AWS_SECURITY_TOKEN": "legacy-session-token"}
    settings = _environment(monkeypatch, tmp_path, env)

    # THEN the client from the environment signs with that token, as botocore's would
    lean = common._wire_from_environment(settings)
    assert lean is not None and lean._credentials().token == "legacy-session-token"
    assert lean._credentials() == common._signing_credentials()


THROTTLED = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException", "message": "x"}
REFUSED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
    "message": "The conditional request failed",
    "Item": {"id": {"S": "b"}},
}


def _on(table: str) -> tuple[str, dict[str, Any]]:
    return "UpdateItem", {**UPDATE, "TableName": table}


def test_two_writes_side_by_side_are_both_out_before_either_answer_is_read(dynamo: Any) -> None:
    # GIVEN a DynamoDB that answers neither of two writes until both have come, one refused
    dynamo.barrier = threading.Barrier(2, timeout=10)
    dynamo.by_table = {"t-a": [Answer(200, {"a": 1})], "t-b": [Answer(400, REFUSED)]}
    client = _client(dynamo, max_attempts=1)

    # WHEN both are sent side by side from one thread
    first, second = client.call_both(_on("t-a"), _on("t-b"))

    # THEN each has its own answer (the refusal as the error ``call`` raises, with the item),
    # and they went out on two connections
    assert first == {"a": 1}
    assert isinstance(second, wire.WireError)
    assert second.code == "ConditionalCheckFailedException"
    assert second.response["Item"] == {"id": {"S": "b"}}
    assert len(dynamo.seen) == 2 and dynamo.peers[0] != dynamo.peers[1]


def test_one_of_two_throttled_is_retried_on_its_own(dynamo: Any) -> None:
    # GIVEN two writes, the first throttled once
    dynamo.by_table = {
        "t-a": [Answer(400, THROTTLED), Answer(200, {"a": 2})],
        "t-b": [Answer(200, {"b": 1})],
    }
    client = _client(dynamo)

    # WHEN both are sent side by side
    answers = client.call_both(_on("t-a"), _on("t-b"))

    # THEN both answered, the throttled one after one jittered wait, the other sent once
    assert answers == ({"a": 2}, {"b": 1})
    tables = [json.loads(body)["TableName"] for _, body in dynamo.seen]
    assert sorted(tables) == ["t-a", "t-a", "t-b"]
    assert len(client.slept) == 1  # type: ignore[attr-defined]


def test_a_hook_failing_between_two_writes_leaves_no_connection_with_an_answer_on_it(
    dynamo: Any,
) -> None:
    # GIVEN a hook that fails the second of two writes after the first went out
    dynamo.by_table = {"t-a": [Answer(200, {"a": 1})], "t-c": [Answer(200, {"c": 1})]}

    class Killed(BaseException):
        pass

    def before_send(event_name: str, request: Any, **_: Any) -> None:
        if b'"t-b"' in request.body:
            raise Killed()

    client = _client(dynamo)
    wire.hooks.register("before-send.dynamodb", before_send, unique_id="t")
    try:
        with pytest.raises(Killed):
            client.call_both(_on("t-a"), _on("t-b"))
    finally:
        wire.hooks.unregister("before-send.dynamodb", unique_id="t")
    # (whether or not the first answer has come yet: neither connection is kept)
    assert not client._local.connections

    # WHEN the thread's next write goes out
    answer = client.call(*_on("t-c"))

    # THEN it reads its own answer, on a new connection, not the first write's
    assert answer == {"c": 1}
    assert len(dynamo.peers) == 2 and dynamo.peers[0] != dynamo.peers[1]
