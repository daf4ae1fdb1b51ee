"""Settings, read once from the environment into a frozen dataclass.

Everything that varies between a laptop, CI and an AWS stage lives here, so the rest of the code
never calls ``os.environ``. ``get_settings()`` caches the result for the life of the container;
tests call ``reset_settings()`` after changing the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    return int(raw) if raw else default


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    return float(raw) if raw else default


def _optional_float(env: dict[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    return float(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    stage: str = "dev"
    table_prefix: str = "sluice-dev"
    region: str = "us-east-1"
    # Only set locally (DynamoDB Local or moto's server); in AWS the SDK finds the endpoint itself.
    dynamodb_endpoint: str | None = None
    # "lean": every DynamoDB call of a relayed request, and the SSM read of a channel's key, go
    # over Sluice's own small client (chalicelib/store/wire.py); "botocore": everything goes
    # through botocore and boto3, as a way back.
    dynamodb_client: str = "lean"
    # Local runs pass the admin key itself; in AWS it is the *name* of an SSM SecureString parameter
    # or a Secrets Manager secret, fetched once per container (see chalicelib.store.secrets).
    admin_key: str | None = field(default=None, repr=False)
    admin_key_ssm_parameter: str | None = None
    admin_key_secret_id: str | None = None
    # Prefix of the SSM parameters that hold upstream provider keys when deployed.
    channel_secret_ssm_prefix: str | None = None
    log_retention_days: int = 90
    # How long an audit record is kept (DynamoDB TTL): a year and a bit, so last year's review
    # of who changed what still finds the same month a year back.
    audit_retention_days: int = 400
    store_content: bool = False
    # Seconds the per-container cache may serve key metadata; the reservation's condition re-checks
    # everything that must be current (status, expiry, hash, quota), so this only delays edits of
    # group / models / allowed IPs.
    key_cache_seconds: float = 10.0
    upstream_connect_timeout: float = 5.0
    # Longest silence between two bytes from upstream; None: as long as the call's deadline
    # allows (a non-streamed answer is silent until it is complete).
    upstream_read_timeout: float | None = None
    # The relay's whole budget per call, from its arrival: the API Gateway integration timeout
    # (REGIONAL REST APIs with response streaming allow up to 15 minutes).
    relay_timeout_seconds: float = 600.0
    # A stream whose provider is silent this long before its first token gets SSE comments, so
    # clients and proxies do not give up on an idle connection.
    stream_keepalive_seconds: float = 10.0
    # True in the relay Lambda, where API Gateway (through Web Adapter's request-context
    # header) is the only source of the client's IP; nowhere else are such headers trusted.
    behind_api_gateway: bool = False
    upstream_max_attempts: int = 3
    # Reservations still pending after this many seconds belong to a request that cannot be alive
    # any more (Lambda's hard limit is 900 s); the sweeper refunds them.
    reservation_max_age_seconds: int = 960
    # A transcription is reserved for this much audio at most (its duration is only known from
    # the answer); a longer file is still transcribed and charged at most this.
    max_audio_seconds: int = 1800
    # A video job holds its reservation until the provider finishes it, at most this long: a
    # job still unfinished then is refunded (the sweeper asks the provider once more first).
    video_job_max_seconds: int = 6 * 3600
    # Budget alerts (chalicelib/core/alerts.py). Deployed, a webhook's signing secret lives in
    # an SSM SecureString under this prefix; locally it sits in the alert settings item.
    alert_secret_ssm_prefix: str | None = None
    # Plain-HTTP webhooks to a loopback address: for local stacks only (default: on when the
    # store is local), never on a deployed stage.
    # Deployed, the name of the stack's own SNS topic and EventBridge bus for budget alerts
    # (infra/alerts.yaml); alert settings may name these and no other. None: neither exists.
    alert_targets_name: str | None = None
    alert_allow_http_loopback: bool = False
    alert_delivery_attempts: int = 4
    alert_backoff_seconds: float = 1.0
    alert_timeout_seconds: float = 5.0

    @property
    def is_local(self) -> bool:
        return self.dynamodb_endpoint is not None

    def table_name(self, suffix: str) -> str:
        return f"{self.table_prefix}-{suffix}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        stage = env.get("SLUICE_STAGE", "dev").strip() or "dev"
        region = (
            env.get("SLUICE_REGION")
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        endpoint = env.get("SLUICE_DYNAMODB_ENDPOINT", "").strip() or None

        # A local stack (DynamoDB Local or moto) keeps every secret locally: `chalice local`
        # copies the stage's AWS settings into the environment, and they must not send a
        # laptop to the real SSM with dummy credentials.
        def aws_only(name: str) -> str | None:
            return (env.get(name, "").strip() or None) if endpoint is None else None

        return cls(
            stage=stage,
            table_prefix=env.get("SLUICE_TABLE_PREFIX", "").strip() or f"sluice-{stage}",
            region=region,
            dynamodb_endpoint=endpoint,
            dynamodb_client=(
                "botocore"
                if env.get("SLUICE_DYNAMODB_CLIENT", "").strip().lower() == "botocore"
                else "lean"
            ),
            admin_key=env.get("SLUICE_ADMIN_KEY", "").strip() or None,
            admin_key_ssm_parameter=aws_only("SLUICE_ADMIN_KEY_SSM_PARAMETER"),
            admin_key_secret_id=aws_only("SLUICE_ADMIN_KEY_SECRET_ID"),
            channel_secret_ssm_prefix=aws_only("SLUICE_CHANNEL_SECRET_SSM_PREFIX"),
            log_retention_days=_int(env, "SLUICE_LOG_RETENTION_DAYS", 90),
            audit_retention_days=_int(env, "SLUICE_AUDIT_RETENTION_DAYS", 400),
            store_content=env.get("SLUICE_STORE_CONTENT", "").strip().lower() in {"1", "true"},
            key_cache_seconds=_float(env, "SLUICE_KEY_CACHE_SECONDS", 10.0),
            upstream_connect_timeout=_float(env, "SLUICE_UPSTREAM_CONNECT_TIMEOUT", 5.0),
            upstream_read_timeout=_optional_float(env, "SLUICE_UPSTREAM_READ_TIMEOUT"),
            # The stack passes its integration timeout, in milliseconds as API Gateway has it.
            relay_timeout_seconds=_float(
                env,
                "SLUICE_RELAY_TIMEOUT_SECONDS",
                _float(env, "SLUICE_RELAY_TIMEOUT_MS", 600_000.0) / 1000,
            ),
            stream_keepalive_seconds=_float(env, "SLUICE_STREAM_KEEPALIVE_SECONDS", 10.0),
            behind_api_gateway=env.get("SLUICE_BEHIND_API_GATEWAY", "").strip().lower()
            in {"1", "true"},
            upstream_max_attempts=_int(env, "SLUICE_UPSTREAM_MAX_ATTEMPTS", 3),
            reservation_max_age_seconds=_int(env, "SLUICE_RESERVATION_MAX_AGE", 960),
            max_audio_seconds=_int(env, "SLUICE_MAX_AUDIO_SECONDS", 1800),
            video_job_max_seconds=_int(env, "SLUICE_VIDEO_JOB_MAX_SECONDS", 6 * 3600),
            alert_secret_ssm_prefix=aws_only("SLUICE_ALERT_SECRET_SSM_PREFIX"),
            alert_targets_name=aws_only("SLUICE_ALERT_TARGETS_NAME"),
            alert_allow_http_loopback=env.get(
                "SLUICE_ALERT_ALLOW_HTTP_LOOPBACK", "1" if endpoint else ""
            )
            .strip()
            .lower()
            in {"1", "true"},
            alert_delivery_attempts=max(_int(env, "SLUICE_ALERT_DELIVERY_ATTEMPTS", 4), 1),
            alert_backoff_seconds=_float(env, "SLUICE_ALERT_BACKOFF_SECONDS", 1.0),
            alert_timeout_seconds=_float(env, "SLUICE_ALERT_TIMEOUT_SECONDS", 5.0),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def reset_settings() -> None:
    """Forget the cached settings (tests, and the local runner after it sets the environment)."""
    get_settings.cache_clear()
